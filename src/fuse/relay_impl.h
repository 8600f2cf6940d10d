// The FUSE relay's implementation class, shared by its source files (private to src/fuse/relay*.cc;
// the public contract is include/ward/fuse/relay.h, the design docs/fuse.md). One file a concern:
//   relay.cc          the loop, kernel -> file system (id translation), file system -> kernel
//                     (reply validation), mounting, run_fuse()
//   relay_restart.cc  failure and restart: backoff, INIT replay, nodes found again, handles
//                     reopened, requests in flight re-issued or refused (poison pills), and the
//                     requests ward itself sends to an instance
//   relay_journal.cc  --journal/--snapshot: what is journaled, and its replay
//   relay_rio.cc      --rio: acknowledged writes kept in a rio::Heap and written again
//   relay_mount.cc    a self-mounting file system's mount(2), answered with ward's socket
//   relay_readdir.cc  directory listings: READDIRPLUS entries, what the kernel was given, and the
//                     rest of a listing served by ward after a restart
//   relay_hidden.cc   files unlinked while open: renamed to a hidden name instead, kept out of
//                     sight, removed when the last handle goes
//
// Contract. A Relay lives for one run_fuse() call, on the caller's thread, and nothing in it is
// touched by any other thread: no locks, and none may be added without revisiting every member.
// Options::on_event is called synchronously from that thread (it must not call back in). The
// Relay owns the /dev/fuse descriptor (kfd_), the mount (until unmount()), the file system's
// process (fs_proc_, which owns the socket fs_ and the pidfd pidfd_; those two are borrowed copies
// that change with every instance), the --rio heap and its directory, and the --snapshot copies;
// the destructor (cleanup()) kills the file system, unmounts and removes what it made. It borrows
// `Options`, which outlives it.
//
// Invalidation. fs_failed() (and so everything that may call it: give_up(), send_to_fs(),
// from_kernel(), from_fs(), rest_of()) may replace the instance: fs_, pidfd_, buf_'s contents (a
// restart's call() receives into buf_), inflight_ and its iterators all change. A caller returns
// its result at once and touches none of them afterwards; the loop notices a restart by
// stats_.restarts moving. A request in flight owns its message (InFlight::msg), so a restart can
// re-issue it. Requests ward itself sends (call()) carry unique ids from kWardUnique up, which the
// kernel never uses; ward answers the kernel only with answer(), to_kernel() and deliver().
#pragma once

#include <linux/fuse.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fuse/ids.h"
#include "fuse/inos.h"
#include "fuse/fs_output.h"
#include "fuse/launch.h"
#include "fuse/notifier.h"
#include "fuse/own_mount.h"
#include "fuse/protocol.h"
#include "fuse/snapshot.h"
#include "ward/core/error.h"
#include "ward/fuse/relay.h"
#include "ward/rio/heap.h"

struct seccomp_notif;  // <linux/seccomp.h>, in relay_mount.cc only

namespace ward::fuse::detail {

using Clock = std::chrono::steady_clock;

// The largest write the kernel may send: FUSE_MAX_MAX_PAGES (256) pages, which ward enforces by
// clamping max_write in the INIT reply, plus headers. The buffer holds one message either way.
inline constexpr std::size_t kMaxWrite = 1u << 20;
inline constexpr std::size_t kBufSize = kMaxWrite + 64 * 1024;
// How long the relay waits for a self-mounting instance to be shown its own mount (own_mount.h).
inline constexpr std::chrono::milliseconds kShowWait{1000};
// The kernel marks an INTERRUPT's unique id (and the answer to it) with bit 0 (fs/fuse/fuse_i.h:
// FUSE_INT_REQ_BIT); ordinary ids are even. Not in every <linux/fuse.h>.
inline constexpr std::uint64_t kIntReqBit = 1;
// The mount's max_read: the kernel's whole readahead window (128 KiB), so a sequential read is one
// READ per window (the hop costs per request, not per byte: docs/fuse.md, "Sequential read"). A
// reply that big does not fit the file system's 16-buffer pipe (launch.cc's filter), so libfuse
// copies it into a buffer it allocates per reply and writes it as one datagram; the file system's
// malloc is told to keep such buffers (launch.cc: kMallocTunables), or glibc would map and unmap,
// or trim and fault in, 128 KiB per reply (4x slower than 64 KiB replies here).
inline constexpr std::size_t kMaxRead = 32 * 4096;
// Requests ward itself sends during a restart carry ids the kernel never uses (it counts up
// from 2 in steps of 2).
inline constexpr std::uint64_t kWardUnique = std::uint64_t{1} << 62;
// Requests up to this size are copied out of the read buffer; larger ones (WRITE) take the buffer.
inline constexpr std::size_t kSmall = 4096;
// Read buffers that finished WRITEs leave for the next ones: as many as the kernel may have WRITEs
// in flight (Relay::spares_wanted), at most this many (each kBufSize). Fewer cost a sequential write
// a fresh buffer per WRITE: allocated, zeroed, its 256 pages faulted in by the kernel's copy, and
// unmapped again (ward used 0.6 ms of CPU per MiB written that way; docs/fuse.md, "Sequential write").
inline constexpr std::size_t kMaxSpares = 32;
// Messages taken each way per wake-up of the loop before it polls again (and judges deadlines).
inline constexpr int kBatch = 16;
// Instances a request may be re-issued to before it is taken for what kills them.
inline constexpr int kMaxAttempts = 3;
// Directory offsets ward gives when it serves a listing itself after a restart (file systems'
// own cookies are positions, hashes or indexes; ward's are this plus an index).
inline constexpr std::uint64_t kCookie = std::uint64_t{1} << 62;

// Unaligned reads and writes of protocol structs in message buffers.
template <typename T>
T load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename T>
void store(char* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

// The ids a request carried in ward's numbering, kept so it can be translated again for a new
// instance of the file system (the message itself holds the instance's ids once sent).
struct WardIds {
  std::uint64_t node = 0, node2 = 0, fh = 0, fh2 = 0;
  bool has_fh = false, has_fh2 = false, has_node2 = false;
};

struct InFlight {
  std::uint32_t opcode = 0;
  const OpInfo* op = nullptr;
  std::uint32_t asked = 0;  // READ/READDIR/xattr: the size the kernel asked for
  Clock::time_point deadline;
  WardIds ids;
  std::vector<char> msg;  // the request as sent (instance ids); names are read from it
  std::uint32_t len = 0;
  int attempts = 0;       // instances that failed of their own accord while holding it
  std::uint64_t sent_to = 0;  // the instance it was last sent to
  // relay_hidden.cc. A RENAME ward sent in place of the kernel's request to move an open file's
  // name out of the way: `hidden` is that file's ward node, `then` the kernel's request (ward's
  // ids), sent next under the same unique id (a RENAME) or instead (the FS refused to rename).
  std::uint64_t hidden = 0;
  std::vector<char> then;
  // relay_hidden.cc. An UNLINK ward sent in place of the kernel's request `then` (an RMDIR, or a
  // RENAME over a directory, answered ENOTEMPTY) to remove a hidden name from the directory
  // `clearing` before `then` is sent again.
  std::uint64_t clearing = 0;
  bool own = false;  // ward's own request (a hidden name removed): its reply goes nowhere
  // relay_hidden.cc. An UNLINK of a hidden name (own, or clearing) that holds the directory
  // (Relay::Hidden): its answer lets go of it. false for a second UNLINK of a name whose own
  // UNLINK is already in flight (the first one's answer lets go).
  bool holds_dir = true;
  // The kernel's INTERRUPT for it was passed on to the instance it was sent to: only then may the
  // instance answer that interrupt (EAGAIN, ENOSYS).
  bool interrupted = false;
};

// One entry of the journal (--journal): a request that succeeded, in ward's ids, and what its
// reply bound, so that a replay can bind the same ward ids to the new instance's.
struct Journaled {
  std::vector<char> msg;  // the request as the kernel sent it (ward's ids); empty for a forget
  const OpInfo* op = nullptr;
  std::uint32_t opcode = 0;
  WardIds ids;
  std::uint64_t node = 0;    // the ward node id its reply named (entry replies)
  std::uint64_t fh = 0;      // the ward file handle its reply opened (OPEN, CREATE)
  std::uint64_t forget = 0;  // lookups of ids.node the instance was told to forget
};

// A request's name arguments: `name` (and `to` for RENAME), bounded by the message and its NULs.
// Empty when the request is malformed.
struct NameArgs {
  std::string_view name, to;
};
NameArgs names_of(const InFlight& r, std::uint32_t minor);
NameArgs names_in(const char* msg, std::size_t len, const OpInfo& op, std::uint32_t opcode, std::uint32_t minor);
// Whether `name` is one ward gives a file unlinked while open (relay_hidden.cc).
bool hidden_name(std::string_view name);

// What is wrong with a reply of `error` and a `body`-byte body to a request of `op` that asked for
// `asked` bytes ("" if nothing): an error carries no body, a success the size the opcode allows.
std::string check_body(const OpInfo& op, std::uint32_t asked, std::int32_t error, std::size_t body);

// Rewrites ward's ids in a request (header nodeid, file handles, a second nodeid) into an
// instance's, from `ids` (ward's numbering), through `node(ward, out)` and `handle(ward, out)`
// (each 0 or an errno). Returns 0, or the errno to answer with.
template <typename NodeFn, typename HandleFn>
int translate_with(char* msg, const OpInfo& op, const WardIds& ids, NodeFn node, HandleFn handle) {
  char* body = msg + sizeof(fuse_in_header);
  std::uint64_t v = 0;
  if (op.has_node) {
    if (ids.node != 0)
      if (int e = node(ids.node, v)) return e;
    auto h = load<fuse_in_header>(msg);
    h.nodeid = ids.node == 0 ? 0 : v;
    store(msg, h);
  }
  if (ids.has_fh) {
    if (int e = handle(ids.fh, v)) return e;
    store(body + op.fh_at, v);
  }
  if (ids.has_fh2) {
    if (int e = handle(ids.fh2, v)) return e;
    store(body + op.fh2_at, v);
  }
  if (ids.has_node2) {
    if (int e = node(ids.node2, v)) return e;
    store(body + op.node_at, v);
  }
  return 0;
}

class Relay {
 public:
  explicit Relay(const Options& o) : o_(o), buf_(kBufSize) {}
  ~Relay() { cleanup(); }
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  Result<Stats> run();

 private:
  // ---- relay.cc: setup, the loop, both directions of the relay --------------------------------
  void log(const std::string& line);
  Result<void> mount_it();
  Result<void> start_fs();
  void reap();  // kills the file system (its whole process group) and records how it ended
  void unmount();
  void cleanup();
  void answer(std::uint64_t unique, int err);
  void event(Event::Kind kind, const std::string& detail);
  Result<void> loop();
  bool pending_fs();
  int translate(char* msg, const OpInfo& op, const WardIds& ids);
  WardIds ward_ids(const char* msg, std::size_t len, const OpInfo& op);
  std::vector<char> with_ward_ids(const InFlight& r);
  void forward_forgets(const char* msg, std::size_t len, std::uint32_t opcode);
  Result<bool> from_kernel();
  Result<void> send_to_fs(const char* msg, std::size_t n);
  std::string check_header(ssize_t n);
  Result<bool> from_fs();
  Result<void> fs_message(ssize_t n);
  void clamp_init(fuse_init_out& init, std::size_t body) const;
  Result<void> deliver(const InFlight& r, char* msg, std::size_t n);
  std::uint64_t entry_reply(const InFlight& r, char* at);
  std::uint64_t node_ino(std::uint64_t ward, std::uint64_t fs_ino);
  void reply_inos(const InFlight& r, char* body, std::size_t n);
  std::uint64_t open_reply(const InFlight& r, char* at, std::uint64_t node);
  Result<ssize_t> rest_of(std::size_t have, std::size_t want);
  Result<void> to_kernel(const char* msg, std::size_t n);

  // ---- relay_restart.cc: failure and restart ----------------------------------------------------
  struct Replayed;  // relay_journal.cc's
  enum class Reissue { sent, refused, released };
  Result<void> fs_failed(Errc kind, std::string detail);
  void blame(Errc kind);
  bool kernel_gone();
  bool may_restart();
  std::unexpected<Error> give_up(Errc kind, std::string detail);
  Result<void> restart();
  Result<void> check_init(const std::vector<char>& reply);
  Retry retry_rule(const InFlight& r);
  Result<Reissue> reissue(std::uint64_t unique, InFlight& r);
  Result<std::vector<char>> already_made(const InFlight& r, std::vector<char> eexist);
  // Requests ward itself sends to an instance (restart, forgets, hidden names): header, body,
  // then each name given (RENAME: `name` and `to`) NUL-terminated.
  std::vector<char> message(std::uint32_t opcode, std::uint64_t unique, std::uint64_t nodeid,
                            const void* body, std::size_t n, std::string_view name = {},
                            std::string_view to = {});
  std::uint64_t ward_unique();
  // `interrupted`: an application interrupted the request before: an INTERRUPT for it follows it
  // (again after each EAGAIN, as the kernel does), and answers to that INTERRUPT are taken.
  Result<std::vector<char>> call(const std::vector<char>& msg, std::chrono::milliseconds limit,
                                 std::size_t len = 0, bool interrupted = false);
  Result<std::vector<char>> call_again(std::vector<char> msg);
  Result<std::optional<fuse_entry_out>> lookup(std::uint64_t dir, std::string_view name);
  Result<std::optional<std::uint64_t>> reopen(std::uint64_t node, std::uint32_t flags, bool dir);
  Result<void> learn_root_ino();
  void forget_in_fs(std::uint64_t fs_node, std::uint64_t count);

  // ---- relay_journal.cc: --journal, --snapshot --------------------------------------------------
  Result<void> open_journal();
  Result<std::expected<Replayed, std::string>> replay();
  bool journaling() const { return o_.journal && !journal_dropped_; }
  void journal(Journaled j);
  void journal_reply(const InFlight& r, std::uint64_t node, std::uint64_t fh);
  void journal_lookup(std::uint64_t dir, std::string_view name, std::uint64_t node);
  void journal_forget(std::uint64_t node, std::uint64_t count);
  // Lets the journal go for the rest of the mount: logged, counted in Stats, reported as an event.
  void drop_journal(const std::string& why);

  // ---- relay_rio.cc: --rio ------------------------------------------------------------------------
  struct Kept {
    rio::Offset off = 0;
    std::uint32_t len = 0;
  };
  Result<void> open_rio();
  void close_rio();
  void rio_replied(const InFlight& r);
  void keep_write(const InFlight& r);
  Result<void> free_kept(const std::vector<Kept>& kept);
  void made_durable(std::uint64_t fh);
  Result<std::size_t> rewrite_kept();

  // ---- relay_notify.cc: notifications from the file system ---------------------------------------
  Result<void> notification(std::size_t n);
  void stop_notifier();

  // ---- relay_readdir.cc: directory listings ------------------------------------------------------
  bool direntplus_reply(const InFlight& r, char* body, std::size_t n);
  void dirent_inos(char* body, std::size_t n);
  void record_listing(const InFlight& r, const char* body, std::size_t n);
  Result<void> resume_listing(Handle& h);
  Result<void> fetch_listing(Handle& h);
  Result<bool> resumed_listing(std::uint64_t unique, const InFlight& r, const char* msg, std::size_t len);
  std::size_t drop_hidden(bool plus, char* body, std::size_t n, std::uint64_t& last_off);

  // ---- relay_hidden.cc: files unlinked while open ----------------------------------------------
  enum class Step { deliver, resend, done };
  // A file unlinked while open: the directory (ward id, held: see relay_hidden.cc) and the hidden
  // name it now has there.
  struct Hidden {
    std::uint64_t dir = 0;
    std::string name;
    // ward's own UNLINK of it is in flight (its last handle went): the entry goes when that is
    // answered. Until then a directory removal that finds it there removes it too (`cleared`:
    // once), since a file system with many threads may answer the removal first.
    bool removing = false, cleared = false;
  };
  Result<bool> hidden_request(std::uint64_t unique, InFlight& r, std::size_t n);
  Result<bool> hidden_reply(std::uint64_t unique, ssize_t& n);
  Result<Step> hidden_step(InFlight& r, char* msg, std::size_t& n);
  Result<bool> send_new(std::uint64_t unique, InFlight r);
  Step switch_to_then(InFlight& r);
  InFlight step_request(std::uint32_t opcode, std::vector<char> msg);
  std::uint64_t removed_dir(const InFlight& r);
  Step start_step(InFlight& r, InFlight step);
  std::optional<InFlight> clear_next(std::uint64_t unique, std::uint64_t dir, std::vector<char>& then);
  InFlight own_unlink(std::uint64_t u, std::uint64_t id, const Hidden& h);
  void seen_attr(std::uint64_t ward, fuse_attr& a);
  void own_done(const InFlight& r, std::int32_t error);
  Result<void> unhide_released();
  Result<void> unhide_all();
  Result<std::optional<fuse_entry_out>> lookup_hiding(std::uint64_t ward, std::uint64_t fs_dir);

  // ---- relay.cc: a self-mounting file system's view of its own mount (own_mount.h) -------------
  void show_own_mount();
  void own_mount_changed();
  bool is_handoff(std::size_t n) const;
  Result<void> handed_off();
  Result<void> await_handoff();

  // ---- relay_mount.cc: a self-mounting file system's mount(2) -----------------------------------
  Result<void> mount_asked();
  void answer_own_requests();
  // A PID namespace, as /proc/PID/ns/pid names it; nullopt when PID is 0 or gone.
  struct NamespaceId {
    dev_t dev;
    ino_t ino;
    bool operator==(const NamespaceId&) const = default;
  };
  static std::optional<NamespaceId> pid_namespace_of(std::uint32_t pid);
  // While the instance whose namespace is `dying` is being reaped (FsProcess::kill_and_reap):
  // takes what the kernel has queued; requests from tasks of that namespace (a FLUSH of a file
  // it had open on ward's mount, sent as the task exits) are answered EIO at once, every other
  // request waits in deferred_ for the loop, which takes it before reading /dev/fuse again.
  void serve_dying(const std::optional<NamespaceId>& dying);
  // Whether task `pid` (ward's PID namespace) is exiting (PF_EXITING) and belongs to the current
  // instance's namespace: a request it sends is its files closing on its way out.
  bool dying_fs_task(std::uint32_t pid) const;
  std::deque<std::vector<char>> deferred_;
  std::optional<NamespaceId> fs_ns_;  // the current instance's PID namespace (start_fs)
  Result<std::string> try_mount_handoff(const seccomp_notif& req);

  const Options& o_;
  std::vector<char> buf_;
  std::vector<std::vector<char>> spare_;  // read buffers given back by finished WRITEs
  // How many spare_ may hold: the kernel's bound on background requests in flight at once (the
  // INIT reply's max_background; writeback WRITEs are background), and a few for synchronous
  // writers, at most kMaxSpares.
  std::size_t spares_wanted() const;
  int kfd_ = -1;
  // Every instance's stdout and stderr, to Options::fs_output_fd (fs_output.h); declared before
  // fs_proc_ so that it outlives it (cleanup() ends the instance first, then this).
  FsOutput output_;
  FsProcess fs_proc_;
  int fs_ = -1, pidfd_ = -1;  // fs_proc_'s socket and pidfd (owned there)
  int status_ = 0;
  bool mounted_ = false, init_done_ = false, ready_pending_ = false;
  bool gone_ = false;  // the kernel's connection went away during a failure: end as unmounted
  MountWatch own_watch_;     // ward's mount in ward's namespace, watched once the FS may see it
  std::string mount_path_;   // the mount point, absolute, as /proc/self/mountinfo writes it
  bool shown_ = false;       // the current instance's namespace holds a clone of ward's mount
  bool own_gone_ = false;    // ward's mount left ward's namespace: never show it again
  bool handed_ = false;      // the current instance's stand-in has handed it ward's socket
  bool init_held_ = false;   // the kernel's INIT waits (in inflight_, unsent) for the hand-off
  Clock::time_point init_deadline_;
  std::vector<char> init_req_;  // the kernel's INIT, replayed to every restarted instance
  std::vector<Journaled> journal_;
  std::size_t journal_bytes_ = 0;
  bool journal_dropped_ = false;
  std::vector<Snapshot> snapshots_;
  std::unique_ptr<rio::Heap> rio_heap_;  // --rio: kept writes
  std::filesystem::path rio_dir_;
  std::unordered_map<std::uint64_t, std::vector<Kept>> kept_;  // by ward file handle, in order
  std::size_t rio_bytes_ = 0;
  bool rio_full_ = false;
  fuse_init_out init_out_{};    // what the kernel was told (after ward's clamp)
  std::size_t init_len_ = 0;
  std::unordered_map<std::uint64_t, InFlight> inflight_;
  std::unique_ptr<Notifier> notifier_;  // started by the first notification
  std::string connection_;              // the mount's device (fusectl.h), for a last-resort abort
  std::size_t notifications_refused_ = 0, notifications_dropped_ = 0;
  Nodes nodes_;
  Inos inos_;
  Handles handles_;
  std::deque<Clock::time_point> restart_times_;
  std::uint64_t ward_calls_ = 0;
  std::string refused_what_;     // the requests the current restart answered itself, for the log
  // Files unlinked while open, by ward node (Hidden: above).
  std::unordered_map<std::uint64_t, Hidden> hidden_;
  std::uint64_t hide_nonce_ = 0;  // the random part of hidden names (relay_hidden.cc)
  bool hide_refused_logged_ = false;
  std::uint64_t instance_ = 0;  // instances started so far; the current one's number
  Stats stats_;
};

// What a journal replay bound: ward's ids -> the new instance's (relay_journal.cc).
struct Relay::Replayed {
  std::unordered_map<std::uint64_t, std::uint64_t> nodes{{Nodes::kRoot, Nodes::kRoot}};
  std::unordered_map<std::uint64_t, std::uint64_t> handles;
  std::unordered_map<std::uint64_t, std::uint64_t> inos;  // ward node -> the instance's inode number
};

}  // namespace ward::fuse::detail
