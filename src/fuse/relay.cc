// The FUSE relay: kernel <-> ward <-> file system, and the file system's restart. The contract is
// in include/ward/fuse/relay.h; the design (why a socket pair works as libfuse3's "/dev/fd/N",
// what a restart replays and why) in docs/fuse.md. What ward knows per opcode is one table
// (protocol.cc); the ids the kernel holds across restarts are ids.h's.
#include "ward/fuse/relay.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "fuse/ids.h"
#include "fuse/launch.h"
#include "fuse/protocol.h"
#include "fuse/snapshot.h"
#include "rio/private_path.h"
#include "ward/rio/heap.h"

namespace ward::fuse {
namespace {

using Clock = std::chrono::steady_clock;
using detail::Body;
using detail::OpInfo;
using detail::Retry;

// The largest write the kernel may send: FUSE_MAX_MAX_PAGES (256) pages, which ward enforces by
// clamping max_write in the INIT reply, plus headers. The buffer holds one message either way.
constexpr std::size_t kMaxWrite = 1u << 20;
constexpr std::size_t kBufSize = kMaxWrite + 64 * 1024;
// The kernel marks an INTERRUPT's unique id (and the answer to it) with bit 0 (fs/fuse/fuse_i.h:
// FUSE_INT_REQ_BIT); ordinary ids are even. Not in every <linux/fuse.h>.
constexpr std::uint64_t kIntReqBit = 1;
constexpr std::size_t kMaxRead = 14 * 4096;
// Requests ward itself sends during a restart carry ids the kernel never uses (it counts up
// from 2 in steps of 2).
constexpr std::uint64_t kWardUnique = std::uint64_t{1} << 62;
// Requests up to this size are copied out of the read buffer; larger ones (WRITE) take the buffer.
constexpr std::size_t kSmall = 4096;
// Instances a request may be re-issued to before it is taken for what kills them.
constexpr int kMaxAttempts = 3;
// Directory offsets ward gives when it serves a listing itself after a restart (file systems'
// own cookies are positions, hashes or indexes; ward's are this plus an index).
constexpr std::uint64_t kCookie = std::uint64_t{1} << 62;

std::string errno_text(std::string_view what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

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

// A reply's name arguments, read from the request: `name` (and `to` for RENAME), bounded by the
// message and its NULs. Empty when the request is malformed.
struct Names {
  std::string_view name, to;
};

Names names_of(const InFlight& r, std::uint32_t minor) {
  const char* body = r.msg.data() + sizeof(fuse_in_header);
  std::size_t len = r.len - sizeof(fuse_in_header);
  std::size_t at = detail::name_offset(*r.op, r.opcode, minor);
  auto next = [&](std::size_t& from) -> std::string_view {
    if (from >= len) return {};
    const char* s = body + from;
    const void* nul = std::memchr(s, 0, len - from);
    if (!nul) return {};
    std::size_t n = static_cast<const char*>(nul) - s;
    from += n + 1;
    return {s, n};
  };
  Names out;
  out.name = next(at);
  if (r.op->names == detail::Names::rename) out.to = next(at);
  return out;
}

class Relay {
 public:
  explicit Relay(const Options& o) : o_(o), buf_(kBufSize) {}
  ~Relay() { cleanup(); }

  Result<Stats> run() {
    if (!o_.snapshots.empty() && !o_.journal)
      return fail(Errc::misuse, "--snapshot needs --journal (a snapshot is put back before a journal replay)");
    for (const auto& path : o_.snapshots) snapshots_.push_back(WARD_TRY(detail::Snapshot::take(path)));
    if (o_.rio && o_.journal)
      return fail(Errc::misuse, "--rio and --journal together: the journal already replays every write");
    if (o_.rio) WARD_TRY(open_rio());
    WARD_TRY(mount_it());
    WARD_TRY(start_fs());
    init_deadline_ = Clock::now() + o_.init_timeout;
    WARD_TRY(loop());
    return stats_;
  }

 private:
  void log(const std::string& line) {
    if (o_.log_fd < 0) return;
    std::string l = "ward fuse " + o_.mountpoint + ": " + line + "\n";
    (void)!::write(o_.log_fd, l.data(), l.size());
  }

  Result<void> mount_it() {
    if (::geteuid() != 0)
      return fail(Errc::misuse, "ward fuse mounts with mount(2) and must run as root (euid " +
                                    std::to_string(::geteuid()) + ")");
    struct stat st {};
    if (::stat(o_.mountpoint.c_str(), &st) != 0)
      return fail(Errc::misuse, errno_text("mount point " + o_.mountpoint, errno));
    if (!S_ISDIR(st.st_mode)) return fail(Errc::misuse, "mount point " + o_.mountpoint + " is not a directory");
    kfd_ = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (kfd_ < 0) return fail(Errc::load_failed, errno_text("open /dev/fuse", errno));
    std::string data = "fd=" + std::to_string(kfd_) + ",rootmode=40000,user_id=" +
                       std::to_string(::getuid()) + ",group_id=" + std::to_string(::getgid());
    if (o_.allow_other) data += ",allow_other";
    if (o_.default_permissions) data += ",default_permissions";
    // 14 pages: header + data of a spliced READ reply fit the 16 buffers splice_to_socket sends
    // as one datagram (see rest_of), so replies of a multithreaded FS cannot interleave.
    data += ",max_read=" + std::to_string(kMaxRead);
    if (::mount("ward", o_.mountpoint.c_str(), "fuse.ward", MS_NOSUID | MS_NODEV, data.c_str()) != 0)
      return fail(Errc::load_failed, errno_text("mount " + o_.mountpoint, errno));
    mounted_ = true;
    return {};
  }

  Result<void> start_fs() {
    ++instance_;
    fs_proc_ = WARD_TRY(detail::launch(o_));
    fs_ = fs_proc_.sock();
    pidfd_ = fs_proc_.pidfd();
    return {};
  }

  // Kills the file system (its whole process group) and records how it ended.
  void reap() {
    fs_proc_.kill_and_reap();
    status_ = fs_proc_.status();
    pidfd_ = -1;
  }

  void unmount() {
    if (!mounted_) return;
    if (::umount2(o_.mountpoint.c_str(), 0) != 0) ::umount2(o_.mountpoint.c_str(), MNT_DETACH);
    mounted_ = false;
  }

  void cleanup() {
    reap();
    unmount();
    if (kfd_ >= 0) ::close(kfd_), kfd_ = -1;
    if (rio_heap_) {  // the kept writes are ward's alone: they go with it
      rio_heap_.reset();
      std::error_code ec;
      std::filesystem::remove_all(rio_dir_, ec);
    }
  }

  void answer(std::uint64_t unique, int err) {
    fuse_out_header oh{};
    oh.len = sizeof oh;
    oh.error = -err;
    oh.unique = unique;
    // ENOENT: the kernel no longer waits for it (interrupted, or the connection is gone).
    (void)!::write(kfd_, &oh, sizeof oh);
    ++stats_.answered_by_ward;
  }

  void event(Event::Kind kind, const std::string& detail) {
    if (o_.on_event) o_.on_event(Event{kind, detail, &stats_});
  }

  // ---- failure and restart --------------------------------------------------------------------

  // The file system failed. Restarts it when the policy allows (the kernel's connection is kept
  // and nothing the applications hold changes), else answers what it held with EIO, unmounts and
  // returns the failure. Callers return its result at once: buffers and maps have changed.
  Result<void> fs_failed(Errc kind, std::string detail) {
    // Wait status first: a process that exited says how.
    reap();
    blame(kind);
    if (WIFSIGNALED(status_) && kind == Errc::exited) {
      kind = Errc::crashed;
      detail += " (killed by " + std::string(::strsignal(WTERMSIG(status_))) + ")";
    } else if (WIFEXITED(status_) && kind == Errc::exited) {
      detail += " (exit status " + std::to_string(WEXITSTATUS(status_)) + ")";
    }
    log("file system failed: " + detail);
    event(Event::Kind::failed, detail);
    std::chrono::milliseconds backoff{5};
    for (;;) {
      if (kernel_gone()) {  // unmounted meanwhile: nothing to restart for
        log("the mount is gone: not restarting");
        gone_ = true;
        return {};
      }
      if (!may_restart()) return give_up(kind, detail);
      restart_times_.push_back(Clock::now());
      ++stats_.restarts;
      stats_.last_failure = detail;
      auto r = restart();
      if (r) return {};
      log("restart " + std::to_string(stats_.restarts) + " failed: " + r.error().detail);
      event(Event::Kind::restart_failed, r.error().detail);
      // A new instance that negotiates differently, or one that cannot even be started (its
      // namespace, its command): another attempt would fail the same way.
      if (r.error().kind == Errc::bad_data || r.error().kind == Errc::load_failed ||
          r.error().kind == Errc::misuse) {
        if (kernel_gone()) {
          gone_ = true;
          return {};
        }
        return give_up(r.error().kind, r.error().detail);
      }
      kind = r.error().kind;
      detail = r.error().detail;
      reap();
      blame(kind);
      // Attempts that fail one after another wait longer each time (10 ms, doubling, at most
      // 1 s): an instance that dies while it starts must not turn ward into a busy loop (it
      // once made 80,000 attempts in 5 minutes under a test's unbounded --restarts). The wait
      // ends early if the mount goes away (POLLERR on /dev/fuse).
      backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
      pollfd w{kfd_, 0, 0};
      (void)::poll(&w, 1, static_cast<int>(backoff.count()));
    }
  }

  // The instance that just failed held some requests. Unless it was killed from outside (SIGKILL
  // that ward did not send: an operator, the OOM killer, a test), each of them may be what killed
  // it; a request that several instances fail holding is a poison pill (see reissue).
  void blame(Errc kind) {
    bool outside = kind == Errc::exited && WIFSIGNALED(status_) && WTERMSIG(status_) == SIGKILL;
    if (outside) return;
    for (auto& [u, r] : inflight_)
      if (r.sent_to == instance_) ++r.attempts;
  }

  // The kernel's side of the connection is gone (unmounted, or aborted through
  // /sys/fs/fuse/connections): /dev/fuse reports POLLERR.
  bool kernel_gone() {
    pollfd p{kfd_, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLERR);
  }

  bool may_restart() {
    if (!init_done_ || o_.max_restarts == 0) return false;
    auto now = Clock::now();
    while (!restart_times_.empty() && now - restart_times_.front() > o_.restart_window)
      restart_times_.pop_front();
    return restart_times_.size() < o_.max_restarts;
  }

  std::unexpected<Error> give_up(Errc kind, std::string detail) {
    for (auto& [unique, r] : inflight_) answer(unique, EIO);
    inflight_.clear();
    reap();
    if (stats_.restarts > 0)
      detail += "; gave up after " + std::to_string(stats_.restarts) + " restart(s)";
    log("giving up: " + detail);
    event(Event::Kind::gave_up, detail);
    unmount();
    auto e = fail(kind, std::move(detail));
    e.error().plugin = o_.command.empty() ? "" : o_.command[0];
    return e;
  }

  // Starts a new instance and brings it to where the kernel believes the old one was: INIT as the
  // kernel negotiated it, every live node found again by name, every open handle reopened, the
  // requests in flight re-issued or answered. Errors: bad_data when the new instance negotiates
  // differently (restarting again would not help); anything else when it failed meanwhile.
  Result<void> restart() {
    auto started = Clock::now();
    bool replaying = o_.journal && !journal_dropped_;
    if (replaying)
      for (const auto& snap : snapshots_) WARD_TRY(snap.restore());
    WARD_TRY(start_fs());
    // INIT, byte for byte what the kernel sent first.
    auto init = WARD_TRY(call(init_req_, o_.init_timeout));
    WARD_TRY(check_init(init));
    Replayed replayed;
    if (replaying) {
      auto r = WARD_TRY(replay());
      if (r) replayed = std::move(*r);
      else drop_journal();  // what follows finds nodes by name, on a partly replayed instance
    }

    std::size_t found = 0, stale = 0, reopened = 0, lost_handles = 0;
    for (std::uint64_t id : nodes_.begin_restart()) {
      detail::Node* n = nodes_.find(id);
      if (auto it = replayed.nodes.find(id); n && it != replayed.nodes.end()) {
        nodes_.rebind(id, it->second, n->fs_refs), ++found;  // the replay counted its lookups again
        continue;
      }
      detail::Node* parent = n ? nodes_.find(n->parent) : nullptr;
      if (!n || !parent || parent->stale || parent->fs == 0) {
        nodes_.mark_stale(id), ++stale;
        continue;
      }
      auto e = WARD_TRY(lookup(parent->fs, n->name));
      if (!e || (e->attr.mode & S_IFMT) != n->type) {
        if (stale < 5)  // the names say what was lost; a few are enough for the log
          log("restart: node " + std::to_string(id) + " ('" + n->name + "' in node " + std::to_string(n->parent) +
              (e ? ") is another kind of file now" : ") is gone") + "; requests on it get ESTALE");
        if (e) forget_in_fs(e->nodeid, 1);
        nodes_.mark_stale(id), ++stale;
        continue;
      }
      nodes_.rebind(id, e->nodeid, 1), ++found;
    }
    for (auto& [id, h] : handles_.all()) {
      if (auto it = replayed.handles.find(id); it != replayed.handles.end()) {
        h.fs = it->second, h.stale = false, ++reopened;  // a RELEASE in flight is re-issued to it
        if (h.dir && !h.listed.empty()) {
          h.resume = true, h.rest_loaded = false;
          WARD_TRY(fetch_listing(h));
        }
        continue;
      }
      if (h.releasing) {  // not reopened just to be released: ward answers that RELEASE
        h.stale = true;
        continue;
      }
      detail::Node* n = nodes_.find(h.node);
      std::optional<std::uint64_t> fh;
      if (n && !n->stale && n->fs != 0) fh = WARD_TRY(reopen(n->fs, h.flags, h.dir));
      h.stale = !fh;
      if (h.dir && !h.listed.empty() && fh) {
        h.resume = true, h.rest_loaded = false;
        WARD_TRY(fetch_listing(h));
      }
      if (fh) h.fs = *fh, ++reopened;
      else ++lost_handles;
    }

    std::size_t rewritten = o_.rio ? WARD_TRY(rewrite_kept()) : 0;

    // The requests the old instance held, oldest first. Each leaves inflight_ only once answered:
    // if this instance fails too, the next restart finds the rest (and the one that failed it,
    // marked as tried).
    std::vector<std::uint64_t> order;
    for (auto& [unique, r] : inflight_) order.push_back(unique);
    std::sort(order.begin(), order.end());
    std::size_t reissued = 0, refused = 0, released = 0;
    for (std::uint64_t unique : order) {
      auto it = inflight_.find(unique);
      if (it == inflight_.end()) continue;
      auto how = WARD_TRY(reissue(unique, it->second));
      inflight_.erase(unique);
      how == Reissue::sent ? ++reissued : how == Reissue::refused ? ++refused : ++released;
    }
    stats_.reissued += reissued;
    stats_.refused += refused;
    stats_.stale_nodes += stale;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    std::string what = "restarted (restart " + std::to_string(stats_.restarts) + ", " + std::to_string(ms) +
        " ms): " + std::to_string(found) + " nodes found again, " + std::to_string(stale) +
        " stale, " + std::to_string(reopened) + " handles reopened, " + std::to_string(lost_handles) +
        " lost, " + std::to_string(reissued) + " requests re-issued, " + std::to_string(refused) +
        " answered with an error" + (o_.rio ? ", " + std::to_string(rewritten) + " kept writes written again" : std::string()) +
        (refused_what_.empty() ? std::string() : " (" + refused_what_.substr(1) + ")") + ", " +
        std::to_string(released) + " releases answered by ward";
    refused_what_.clear();
    log(what);
    event(Event::Kind::restarted, what);
    return {};
  }

  // ---- directory listings across restarts ------------------------------------------------------

  // Walks the entries of a READDIR (plus = false) or READDIRPLUS body; false if malformed.
  template <typename Fn>
  static bool each_dirent(const char* body, std::size_t n, bool plus, Fn fn) {
    std::size_t head = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
    std::size_t dirent_at = plus ? offsetof(fuse_direntplus, dirent) : 0;
    for (std::size_t at = 0; at < n;) {
      if (n - at < head) return false;
      auto d = load<fuse_dirent>(body + at + dirent_at);
      std::size_t size = FUSE_DIRENT_ALIGN(head + d.namelen);
      if (d.namelen == 0 || d.namelen > 1024 || size > n - at) return false;
      detail::DirEntry e;
      e.off = d.off, e.ino = d.ino, e.type = d.type;
      e.name.assign(body + at + head, d.namelen);
      fn(std::move(e));
      at += size;
    }
    return true;
  }

  // During a restart: the new instance's whole listing of `h` (READDIR from offset 0 to the end,
  // bounded), into h.rest; resume is off when the file system will not list it.
  Result<void> fetch_listing(detail::Handle& h) {
    h.rest.clear();
    detail::Node* node = nodes_.find(h.node);
    if (!node || node->fs == 0) return h.resume = false, Result<void>{};
    constexpr std::size_t kMaxEntries = 1u << 22;  // a hostile listing must not eat ward's memory
    std::uint64_t next = 0;
    for (;;) {
      fuse_read_in rd{};
      rd.fh = h.fs;
      rd.offset = next;
      rd.size = 64 * 1024;
      auto reply = WARD_TRY(call(message(FUSE_READDIR, ward_unique(), node->fs, &rd, sizeof rd), o_.request_timeout));
      auto oh = load<fuse_out_header>(reply.data());
      std::size_t body = reply.size() - sizeof oh;
      if (oh.error != 0) return h.resume = false, h.rest.clear(), Result<void>{};
      if (body == 0) return {};
      std::uint64_t before = next;
      bool ok = each_dirent(reply.data() + sizeof oh, body, false, [&](detail::DirEntry e) {
        next = e.off;
        h.rest.push_back(std::move(e));
      });
      if (!ok || next == before || h.rest.size() > kMaxEntries)
        return fail(Errc::violation, "the restarted file system's listing of a directory does not end");
    }
  }

  // What the kernel was given from a directory handle (for a resume after a restart).
  void record_listing(const InFlight& r, const char* body, std::size_t n) {
    detail::Handle* h = r.ids.has_fh ? handles_.find(r.ids.fh) : nullptr;
    if (!h) return;
    auto in = load<fuse_read_in>(r.msg.data() + sizeof(fuse_in_header));
    if (in.offset == 0) h->listed.clear();
    (void)each_dirent(body, n, r.opcode == FUSE_READDIRPLUS,
                      [&](detail::DirEntry e) { h->listed.push_back(std::move(e)); });
  }

  // A READDIR/READDIRPLUS on a handle the file system was restarted under mid-listing: ward
  // answers it from the new instance's listing minus what the kernel consumed before. Returns
  // false when the request is not one of those (or cannot be: then it goes to the file system
  // as is, with the file system's own offsets).
  Result<bool> resumed_listing(std::uint64_t unique, const InFlight& r, const char* msg, std::size_t len) {
    std::uint32_t opcode = r.opcode;
    if ((opcode != FUSE_READDIR && opcode != FUSE_READDIRPLUS) || !r.ids.has_fh ||
        len < sizeof(fuse_in_header) + sizeof(fuse_read_in))
      return false;
    auto in = load<fuse_read_in>(msg + sizeof(fuse_in_header));  // offset and size: never translated
    detail::Handle* h = handles_.find(r.ids.fh);
    if (!h || !h->resume || h->stale) return false;
    if (in.offset == 0) {  // rewinddir: the new instance's listing from the start
      h->resume = false, h->listed.clear(), h->rest.clear();
      return false;
    }
    if (!h->rest_loaded) {
      // The kernel consumed the entries up to the one whose offset it now asks from; `rest`
      // holds the new instance's whole listing, fetched during the restart.
      std::vector<detail::DirEntry> remaining;
      auto upto = std::find_if(h->listed.begin(), h->listed.end(),
                               [&](const detail::DirEntry& e) { return e.off == in.offset; });
      if (upto == h->listed.end()) {
        h->resume = false;
        return false;
      }
      std::unordered_set<std::string> consumed;
      for (auto it = h->listed.begin(); it != std::next(upto); ++it) consumed.insert(it->name);
      for (auto& e : h->rest)
        if (!consumed.contains(e.name)) remaining.push_back(std::move(e));
      h->rest = std::move(remaining);
      remaining.clear();
      h->rest_loaded = true;
    }
    // Ward's offsets: kCookie + the index of the next entry to give.
    std::size_t i = in.offset >= kCookie ? static_cast<std::size_t>(in.offset - kCookie) : 0;
    bool plus = opcode == FUSE_READDIRPLUS;
    std::size_t head = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
    std::vector<char> out(sizeof(fuse_out_header));
    for (; i < h->rest.size(); ++i) {
      const auto& e = h->rest[i];
      std::size_t size = FUSE_DIRENT_ALIGN(head + e.name.size());
      if (out.size() - sizeof(fuse_out_header) + size > in.size) break;
      std::size_t at = out.size();
      out.resize(at + size, 0);
      fuse_dirent d{};
      d.ino = e.ino, d.off = kCookie + i + 1, d.namelen = static_cast<std::uint32_t>(e.name.size()), d.type = e.type;
      // READDIRPLUS: no entry (node id 0): the kernel lists the name and looks it up when asked.
      std::memcpy(out.data() + at + (plus ? offsetof(fuse_direntplus, dirent) : 0), &d, sizeof d);
      std::memcpy(out.data() + at + head, e.name.data(), e.name.size());
      // Listed under ward's offset: a restart during this resume starts from here.
      detail::DirEntry given = e;
      given.off = d.off;
      h->listed.push_back(std::move(given));
    }
    fuse_out_header oh{};
    oh.len = static_cast<std::uint32_t>(out.size());
    oh.unique = unique;
    store(out.data(), oh);
    WARD_TRY(to_kernel(out.data(), out.size()));
    ++stats_.answered_by_ward;
    return true;
  }

  // ---- acknowledged writes in a Rio heap (--rio) -------------------------------------------------

  struct Kept {
    rio::Offset off = 0;
    std::uint32_t len = 0;
  };

  Result<void> open_rio() {
    std::filesystem::path base = "/dev/shm/ward-" + std::to_string(::geteuid());
    WARD_TRY(rio::ensure_private_dir(base));
    rio_dir_ = WARD_TRY(rio::make_private_dir(base, "fuse-rio"));
    rio::HeapOptions ho;
    ho.path = rio_dir_ / "writes.heap";
    ho.size = o_.rio_size + (4u << 20);  // room for the allocator's own blocks
    rio_heap_ = WARD_TRY(rio::Heap::open(ho));
    return {};
  }

  // A WRITE the kernel now believes done: its request (ward's ids) goes into the heap.
  void keep_write(const InFlight& r) {
    if (rio_full_) return;
    std::vector<char> m = with_ward_ids(r);
    auto kept = [&]() -> Result<Kept> {
      auto tx = WARD_TRY(rio_heap_->begin());
      auto a = WARD_TRY(tx.alloc(m.size()));
      std::memcpy(a.data, m.data(), m.size());
      WARD_TRY(tx.commit());
      return Kept{a.off, static_cast<std::uint32_t>(m.size())};
    }();
    if (!kept || rio_bytes_ + m.size() > o_.rio_size) {
      if (kept) (void)made_durable_one(kept->off);
      log("--rio: " + (kept ? std::string("more than --rio-size of writes not yet made durable") : kept.error().detail) +
          "; ward stops keeping writes (a restart can lose what the file system had not made durable)");
      rio_full_ = true;
      return;
    }
    rio_bytes_ += m.size();
    kept_[r.ids.fh].push_back(*kept);
    ++stats_.rio_kept;
  }

  Result<void> made_durable_one(rio::Offset off) {
    auto tx = WARD_TRY(rio_heap_->begin());
    WARD_TRY(tx.free(off));
    return tx.commit();
  }

  // FLUSH, FSYNC or RELEASE of `fh` succeeded: what was written through it is the file system's.
  void made_durable(std::uint64_t fh) {
    auto it = kept_.find(fh);
    if (it == kept_.end()) return;
    auto freed = [&]() -> Result<void> {
      auto tx = WARD_TRY(rio_heap_->begin());
      for (const Kept& k : it->second) WARD_TRY(tx.free(k.off));
      return tx.commit();
    }();
    if (!freed) log("--rio: freeing kept writes failed: " + freed.error().detail);
    for (const Kept& k : it->second) rio_bytes_ -= k.len, --stats_.rio_kept;
    kept_.erase(it);
  }

  // After a restart: every kept write again, in order, through its reopened handle. Returns how
  // many were written.
  Result<std::size_t> rewrite_kept() {
    std::size_t n = 0, lost = 0;
    const OpInfo* op = detail::op_info(FUSE_WRITE);
    for (auto& [fh, list] : kept_) {
      detail::Handle* h = handles_.find(fh);
      for (const Kept& k : list) {
        std::vector<char> m(rio_heap_->at<char>(k.off), rio_heap_->at<char>(k.off) + k.len);
        WardIds ids = ward_ids(m.data(), m.size(), *op);
        if (!h || h->stale || translate(m.data(), *op, ids) != 0) {
          ++lost;
          continue;
        }
        auto hd = load<fuse_in_header>(m.data());
        hd.unique = ward_unique();
        store(m.data(), hd);
        auto reply = WARD_TRY(call(m, o_.request_timeout));
        if (load<fuse_out_header>(reply.data()).error != 0) ++lost;
        else ++n, ++stats_.rio_rewritten;
      }
    }
    if (lost > 0)
      log("--rio: " + std::to_string(lost) + " kept writes could not be written again (handle lost or refused)");
    return n;
  }

  // ---- the journal (--journal) ------------------------------------------------------------------

  struct Replayed {
    std::unordered_map<std::uint64_t, std::uint64_t> nodes{{detail::Nodes::kRoot, detail::Nodes::kRoot}};
    std::unordered_map<std::uint64_t, std::uint64_t> handles;
  };

  // Sends the journal, in order, to the new instance: it then holds what the kernel was told, and
  // the maps say which of its ids each ward id is. nullopt when the instance answered differently
  // from the first time (logged): the journal no longer describes it.
  Result<std::optional<Replayed>> replay() {
    Replayed m;
    std::size_t i = 0;
    for (const Journaled& j : journal_) {
      ++i;
      if (j.forget > 0) {
        if (auto it = m.nodes.find(j.ids.node); it != m.nodes.end()) forget_in_fs(it->second, j.forget);
        continue;
      }
      std::vector<char> msg = j.msg;
      int err = translate_with(
          msg.data(), *j.op, j.ids,
          [&](std::uint64_t w, std::uint64_t& out) {
            auto it = m.nodes.find(w);
            return it == m.nodes.end() ? ESTALE : (out = it->second, 0);
          },
          [&](std::uint64_t w, std::uint64_t& out) {
            auto it = m.handles.find(w);
            return it == m.handles.end() ? EBADF : (out = it->second, 0);
          });
      auto diverged = [&](const std::string& why) -> Result<std::optional<Replayed>> {
        log("journal replay stopped at entry " + std::to_string(i) + " of " + std::to_string(journal_.size()) +
            " (" + j.op->name + "): " + why + "; the journal is dropped, nodes are found by name");
        return std::optional<Replayed>{};
      };
      if (err != 0) return diverged(std::string("an id it names is not bound: ") + std::strerror(err));
      auto h = load<fuse_in_header>(msg.data());
      h.unique = ward_unique();
      store(msg.data(), h);
      auto reply = WARD_TRY(call(msg, o_.request_timeout));
      auto oh = load<fuse_out_header>(reply.data());
      if (oh.error != 0) return diverged(std::string("it failed this time: ") + std::strerror(-oh.error));
      const char* body = reply.data() + sizeof oh;
      if (j.node) m.nodes[j.node] = load<fuse_entry_out>(body).nodeid;
      if (j.fh)
        m.handles[j.fh] = load<fuse_open_out>(body + (j.opcode == FUSE_CREATE ? sizeof(fuse_entry_out) : 0)).fh;
      if (j.opcode == FUSE_RELEASE && j.ids.has_fh) m.handles.erase(j.ids.fh);
      ++stats_.replayed;
    }
    return std::optional{std::move(m)};
  }

  bool journaling() const { return o_.journal && !journal_dropped_; }

  void journal(Journaled j) {
    std::size_t bytes = j.msg.size() + sizeof j;
    if (journal_bytes_ + bytes > o_.journal_limit) {
      log("the journal reached --journal-limit (" + std::to_string(o_.journal_limit) +
          " bytes): dropped; restarts now find nodes by name and cannot bring back what the file "
          "system held only in memory");
      drop_journal();
      return;
    }
    journal_bytes_ += bytes;
    journal_.push_back(std::move(j));
    stats_.journal_entries = journal_.size();
    stats_.journal_bytes = journal_bytes_;
  }

  void drop_journal() {
    journal_dropped_ = true;
    journal_.clear();
    journal_.shrink_to_fit();
    journal_bytes_ = 0;
    stats_.journal_entries = stats_.journal_bytes = 0;
  }

  // The request of `r` with ward's ids back in place of the instance's.
  std::vector<char> with_ward_ids(const InFlight& r) {
    std::vector<char> m(r.msg.data(), r.msg.data() + r.len);
    char* body = m.data() + sizeof(fuse_in_header);
    if (r.op->has_node) {
      auto h = load<fuse_in_header>(m.data());
      h.nodeid = r.ids.node;
      store(m.data(), h);
    }
    if (r.ids.has_fh) store(body + r.op->fh_at, r.ids.fh);
    if (r.ids.has_fh2) store(body + r.op->fh2_at, r.ids.fh2);
    if (r.ids.has_node2) store(body + r.op->node_at, r.ids.node2);
    return m;
  }

  // The restarted instance must agree to what the kernel was told: same protocol, same feature
  // flags, writes at least as large.
  Result<void> check_init(const std::vector<char>& reply) {
    std::size_t body = reply.size() - sizeof(fuse_out_header);
    fuse_init_out now{};
    std::memcpy(&now, reply.data() + sizeof(fuse_out_header), std::min(body, sizeof now));
    clamp_init(now, body);
    if (body != init_len_ || now.major != init_out_.major || now.minor != init_out_.minor ||
        now.flags != init_out_.flags || now.flags2 != init_out_.flags2 ||
        now.max_write < init_out_.max_write || now.max_pages < init_out_.max_pages)
      return fail(Errc::bad_data, "the restarted file system negotiated INIT differently (flags " +
                                      std::to_string(now.flags) + " vs " + std::to_string(init_out_.flags) +
                                      ", max_write " + std::to_string(now.max_write) + " vs " +
                                      std::to_string(init_out_.max_write) + ")");
    return {};
  }

  void clamp_init(fuse_init_out& init, std::size_t body) const {
    // ward's buffers bound the largest write the kernel may send.
    if (body >= offsetof(fuse_init_out, max_write) + sizeof init.max_write && init.max_write > kMaxWrite)
      init.max_write = kMaxWrite;
  }

  // ---- requests ward itself sends to the file system (restart only) ----------------------------

  std::vector<char> message(std::uint32_t opcode, std::uint64_t unique, std::uint64_t nodeid,
                            const void* body, std::size_t n, std::string_view name = {}) {
    std::vector<char> m(sizeof(fuse_in_header) + n + (name.data() ? name.size() + 1 : 0));
    fuse_in_header h{};
    h.len = static_cast<std::uint32_t>(m.size());
    h.opcode = opcode;
    h.unique = unique;
    h.nodeid = nodeid;
    std::memcpy(m.data(), &h, sizeof h);
    if (n) std::memcpy(m.data() + sizeof h, body, n);
    if (name.data()) std::memcpy(m.data() + sizeof h + n, name.data(), name.size());
    return m;
  }

  std::uint64_t ward_unique() { return kWardUnique + 2 * ++ward_calls_; }

  // Sends one request (its unique id in the message) and waits, within `limit`, for the reply
  // with that id. Notifications meanwhile are dropped (the kernel's caches are revalidated after
  // a restart anyway); any other message, a malformed reply or the instance's death is an error.
  Result<std::vector<char>> call(const std::vector<char>& msg, std::chrono::milliseconds limit,
                                 std::size_t len = 0) {
    if (len == 0) len = msg.size();
    auto in = load<fuse_in_header>(msg.data());
    if (::send(fs_, msg.data(), len, MSG_NOSIGNAL) != static_cast<ssize_t>(len))
      return fail(Errc::exited, errno_text("the restarted file system did not take a request", errno));
    auto deadline = Clock::now() + limit;
    for (;;) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0)
        return fail(Errc::hung, "the restarted file system did not answer " +
                                    std::string(detail::op_info(in.opcode)->name) + " within " +
                                    std::to_string(limit.count()) + " ms");
      pollfd p[2] = {{fs_, POLLIN, 0}, {pidfd_, POLLIN, 0}};
      int r = ::poll(p, 2, static_cast<int>(left));
      if (r < 0 && errno != EINTR) return fail(Errc::misuse, errno_text("poll", errno));
      if (r <= 0) continue;
      if (!(p[0].revents & POLLIN)) {
        if (p[1].revents || (p[0].revents & (POLLHUP | POLLERR)))
          return fail(Errc::exited, "the restarted file system exited");
        continue;
      }
      ssize_t n = ::recv(fs_, buf_.data(), buf_.size(), MSG_TRUNC | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) return fail(Errc::exited, "the restarted file system closed its end");
      auto bad = check_header(n);
      if (!bad.empty()) return fail(Errc::violation, bad);
      auto oh = load<fuse_out_header>(buf_.data());
      if (oh.unique == 0) continue;
      if (oh.unique != in.unique)
        return fail(Errc::violation, "reply with unique id " + std::to_string(oh.unique) +
                                         " during a restart, not the request in flight");
      const OpInfo* op = detail::op_info(in.opcode);
      std::size_t body = n - sizeof oh;
      std::uint32_t asked = detail::asked_size(in.opcode, msg.data() + sizeof in, len - sizeof in);
      if (oh.error != 0 ? body != 0 : !detail::body_size_ok(op->body, asked, body, kMaxWrite))
        return fail(Errc::violation, std::string("reply to ") + op->name + " with a " +
                                         std::to_string(body) + "-byte body");
      return std::vector<char>(buf_.data(), buf_.data() + n);
    }
  }

  // LOOKUP of `name` in the instance's directory `dir`: the entry, nullopt when it is not there.
  Result<std::optional<fuse_entry_out>> lookup(std::uint64_t dir, std::string_view name) {
    auto reply = WARD_TRY(call(message(FUSE_LOOKUP, ward_unique(), dir, nullptr, 0, name), o_.request_timeout));
    auto oh = load<fuse_out_header>(reply.data());
    if (oh.error != 0) return std::optional<fuse_entry_out>{};
    auto e = load<fuse_entry_out>(reply.data() + sizeof oh);
    if (e.nodeid == 0) return std::optional<fuse_entry_out>{};  // a negative entry
    return std::optional{e};
  }

  // OPEN/OPENDIR of the instance's node with the flags the kernel first sent, minus those that
  // would create or truncate again. The instance's file handle, nullopt when it refused.
  Result<std::optional<std::uint64_t>> reopen(std::uint64_t node, std::uint32_t flags, bool dir) {
    fuse_open_in in{};
    in.flags = flags & ~static_cast<std::uint32_t>(O_CREAT | O_EXCL | O_TRUNC);
    auto reply = WARD_TRY(call(message(dir ? FUSE_OPENDIR : FUSE_OPEN, ward_unique(), node, &in, sizeof in),
                               o_.request_timeout));
    auto oh = load<fuse_out_header>(reply.data());
    if (oh.error != 0) return std::optional<std::uint64_t>{};
    return std::optional{load<fuse_open_out>(reply.data() + sizeof oh).fh};
  }

  void forget_in_fs(std::uint64_t fs_node, std::uint64_t count) {
    fuse_forget_in f{};
    f.nlookup = count;
    auto m = message(FUSE_FORGET, ward_unique(), fs_node, &f, sizeof f);
    (void)!::send(fs_, m.data(), m.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }

  // Whether a request may be sent again to a new instance (protocol.cc's rule, narrowed where the
  // request's own arguments make it non-idempotent).
  Retry retry_rule(const InFlight& r) {
    Retry rule = r.op->retry;
    const char* body = r.msg.data() + sizeof(fuse_in_header);
    std::size_t len = r.len - sizeof(fuse_in_header);
    if (r.opcode == FUSE_WRITE && r.ids.has_fh) {
      // pwrite on a descriptor opened O_APPEND appends wherever the offset says: twice is twice.
      detail::Handle* h = handles_.find(r.ids.fh);
      if (!h || (h->flags & O_APPEND)) rule = Retry::never;
    }
    if (r.opcode == FUSE_RENAME2 && len >= sizeof(fuse_rename2_in) &&
        (load<fuse_rename2_in>(body).flags & RENAME_EXCHANGE))
      rule = Retry::never;  // exchanging twice undoes it
    if (r.opcode == FUSE_FALLOCATE && len >= sizeof(fuse_fallocate_in) &&
        (load<fuse_fallocate_in>(body).mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)))
      rule = Retry::never;  // inserting or collapsing a range twice moves data twice
    return rule;
  }

  enum class Reissue { sent, refused, released };

  // A request the old instance held at its failure: sent again, refused (EIO), or a release ward
  // answers itself (the new instance never had that handle open).
  Result<Reissue> reissue(std::uint64_t unique, InFlight& r) {
    // A request every instance dies holding is a poison pill: after kMaxAttempts it is answered.
    // (More than one: an instance can also die of something else while it holds an innocent one.)
    Retry rule = r.attempts >= kMaxAttempts ? Retry::never : retry_rule(r);
    if (rule == Retry::release) {
      // The journal replay opened it in the new instance: that instance must hear the release.
      detail::Handle* h = handles_.find(r.ids.fh);
      if (h && !h->stale) rule = Retry::again;
    }
    if (rule == Retry::release) {
      handles_.erase(r.ids.fh);
      answer(unique, 0);
      return Reissue::released;
    }
    if (rule == Retry::never) {
      answer(unique, EIO);
      refused_what_ += std::string(" ") + r.op->name;
      return Reissue::refused;
    }
    if (bool served = WARD_TRY(resumed_listing(unique, r, r.msg.data(), r.len)); served)
      return Reissue::sent;
    r.sent_to = instance_;
    if (int err = translate(r.msg.data(), *r.op, r.ids); err != 0) {
      answer(unique, err);
      refused_what_ += std::string(" ") + r.op->name + "(" + std::strerror(err) + ")";
      return Reissue::refused;
    }
    auto reply = WARD_TRY(call(r.msg, o_.request_timeout, r.len));
    auto oh = load<fuse_out_header>(reply.data());
    if (rule == Retry::missing_done && (oh.error == -ENOENT || oh.error == -ENODATA)) {
      // Gone already: the first attempt removed it (the kernel had checked it existed).
      reply.resize(sizeof oh);
      oh.error = 0;
      oh.len = sizeof oh;
      store(reply.data(), oh);
    } else if (rule == Retry::exists_done && oh.error == -EEXIST) {
      reply = WARD_TRY(already_made(r, reply));
    }
    WARD_TRY(deliver(r, reply.data(), reply.size()));
    return Reissue::sent;
  }

  // A create-like request answered EEXIST when re-issued: the first attempt made it (the kernel
  // had seen the name absent, and holds the directory locked while it creates). Answers as the
  // first attempt would have: the entry (and for CREATE an open handle) of what is there now, if
  // it is of the kind that was asked for; else the EEXIST stands.
  Result<std::vector<char>> already_made(const InFlight& r, std::vector<char> eexist) {
    if (r.op->body != Body::entry && r.op->body != Body::create) {  // SETXATTR: done
      eexist.resize(sizeof(fuse_out_header));
      auto oh = load<fuse_out_header>(eexist.data());
      oh.error = 0;
      store(eexist.data(), oh);
      return eexist;
    }
    auto names = names_of(r, init_out_.minor);
    auto dir = load<fuse_in_header>(r.msg.data()).nodeid;  // already the new instance's id
    auto e = WARD_TRY(lookup(dir, names.name));
    if (!e) return eexist;
    const char* body = r.msg.data() + sizeof(fuse_in_header);
    std::uint32_t want = 0;
    switch (r.opcode) {
      case FUSE_MKDIR: want = S_IFDIR; break;
      case FUSE_SYMLINK: want = S_IFLNK; break;
      case FUSE_CREATE: want = S_IFREG; break;
      case FUSE_MKNOD: want = load<fuse_mknod_in>(body).mode & S_IFMT; break;
      case FUSE_LINK: want = e->nodeid == load<fuse_link_in>(body).oldnodeid ? (e->attr.mode & S_IFMT) : 0; break;
      default: break;
    }
    if ((e->attr.mode & S_IFMT) != want) {
      forget_in_fs(e->nodeid, 1);
      return eexist;
    }
    std::vector<char> out(sizeof(fuse_out_header) + sizeof(fuse_entry_out) +
                          (r.opcode == FUSE_CREATE ? sizeof(fuse_open_out) : 0));
    fuse_out_header oh{};
    oh.len = static_cast<std::uint32_t>(out.size());
    oh.unique = load<fuse_in_header>(r.msg.data()).unique;
    store(out.data(), oh);
    store(out.data() + sizeof oh, *e);
    if (r.opcode == FUSE_CREATE) {
      auto fh = WARD_TRY(reopen(e->nodeid, load<fuse_create_in>(body).flags, false));
      if (!fh) return eexist;
      fuse_open_out o{};
      o.fh = *fh;
      store(out.data() + sizeof oh + sizeof *e, o);
    }
    return out;
  }

  // ---- the loop ---------------------------------------------------------------------------------

  Result<void> loop() {
    bool stopping = false;
    Clock::time_point stop_deadline{};
    for (;;) {
      auto now = Clock::now();
      Clock::time_point next = Clock::time_point::max();
      if (!init_done_) next = init_deadline_;
      for (auto& [u, r] : inflight_) next = std::min(next, r.deadline);
      if (stopping) next = std::min(next, stop_deadline);
      int timeout = -1;
      if (next != Clock::time_point::max())
        timeout = static_cast<int>(
            std::max<long>(0, std::chrono::ceil<std::chrono::milliseconds>(next - now).count()));
      pollfd p[4] = {{kfd_, POLLIN, 0}, {fs_, POLLIN, 0}, {pidfd_, POLLIN, 0}, {o_.stop_fd, POLLIN, 0}};
      int np = o_.stop_fd >= 0 && !stopping ? 4 : 3;
      int r = ::poll(p, np, timeout);
      if (r < 0) {
        if (errno == EINTR) continue;
        return fail(Errc::misuse, errno_text("poll", errno));
      }
      now = Clock::now();
      if (np == 4 && (p[3].revents & POLLIN)) {
        log("stop requested: unmounting");
        stopping = true;
        stop_deadline = now + o_.exit_timeout;
        unmount();
      }
      // Replies first: they free requests in flight before deadlines are judged. After a
      // restart every descriptor polled above has changed: poll again.
      std::uint64_t epoch = stats_.restarts;
      if (p[1].revents & POLLIN) WARD_TRY(from_fs());
      if (gone_) break;
      if (epoch != stats_.restarts) continue;
      if ((p[2].revents & POLLIN) || (p[1].revents & POLLHUP)) {
        // Replies it sent before it went are delivered: those requests are done.
        for (int i = 0; i < 4096 && epoch == stats_.restarts && pending_fs(); ++i) WARD_TRY(from_fs());
        if (gone_) break;
        if (epoch != stats_.restarts) continue;
        if (stopping) break;
        WARD_TRY(fs_failed(Errc::exited, "the file system exited"));
        if (gone_) break;
        continue;
      }
      if (p[0].revents & (POLLIN | POLLERR)) {
        bool gone = WARD_TRY(from_kernel());
        if (gone || gone_) break;
        if (epoch != stats_.restarts) continue;
      }
      if (!init_done_ && now >= init_deadline_) {
        WARD_TRY(fs_failed(Errc::hung, "no answer to INIT within " +
                                           std::to_string(o_.init_timeout.count()) + " ms"));
        if (gone_) break;
        continue;
      }
      for (auto& [u, req] : inflight_)
        if (req.opcode != FUSE_INIT && now >= req.deadline) {
          std::string what = std::string("no answer to ") + req.op->name + " (opcode " +
                             std::to_string(req.opcode) + ") within " +
                             std::to_string(o_.request_timeout.count()) + " ms";
          WARD_TRY(fs_failed(Errc::hung, std::move(what)));
          break;
        }
      if (gone_) break;
      if (stopping && now >= stop_deadline) {
        log("the kernel still holds the (detached) mount after the exit timeout; leaving");
        break;
      }
    }
    std::string what = "unmounted: " + std::to_string(stats_.requests) + " requests, " +
                       std::to_string(stats_.replies) + " replies, " + std::to_string(stats_.joined) +
                       " datagrams joined, " + std::to_string(stats_.restarts) + " restarts";
    log(what);
    event(Event::Kind::unmounted, what);
    fs_proc_.end(o_.exit_timeout);
    return {};
  }

  bool pending_fs() {
    pollfd p{fs_, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
  }

  // ---- kernel -> file system --------------------------------------------------------------------

  // Rewrites ward's ids in a request (header nodeid, file handles, a second nodeid) into an
  // instance's, from `ids` (ward's numbering), through `node(ward, out)` and `handle(ward, out)`
  // (each 0 or an errno). Returns 0, or the errno to answer with.
  template <typename NodeFn, typename HandleFn>
  static int translate_with(char* msg, const OpInfo& op, const WardIds& ids, NodeFn node, HandleFn handle) {
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

  // The same, to the current instance's ids.
  int translate(char* msg, const OpInfo& op, const WardIds& ids) {
    return translate_with(
        msg, op, ids,
        [&](std::uint64_t ward, std::uint64_t& out) {
          detail::Node* n = nodes_.find(ward);
          if (!n) return EIO;  // the kernel never got this id from ward
          if (n->stale || n->fs == 0) return ESTALE;
          return out = n->fs, 0;
        },
        [&](std::uint64_t ward, std::uint64_t& out) {
          detail::Handle* h = handles_.find(ward);
          if (!h) return EBADF;
          if (h->stale) return EIO;
          return out = h->fs, 0;
        });
  }

  // Which of the request's fields hold ward ids (bounded by the body the kernel sent).
  WardIds ward_ids(const char* msg, std::size_t len, const OpInfo& op) {
    WardIds ids;
    const char* body = msg + sizeof(fuse_in_header);
    std::size_t blen = len - sizeof(fuse_in_header);
    auto fits = [&](std::int16_t at) { return at >= 0 && static_cast<std::size_t>(at) + 8 <= blen; };
    if (op.has_node) ids.node = load<fuse_in_header>(msg).nodeid;
    bool fh_present = fits(op.fh_at) &&
                      (op.fh_flag_at < 0 || (static_cast<std::size_t>(op.fh_flag_at) + 4 <= blen &&
                                             (load<std::uint32_t>(body + op.fh_flag_at) & op.fh_flag)));
    if (fh_present) ids.has_fh = true, ids.fh = load<std::uint64_t>(body + op.fh_at);
    if (fits(op.fh2_at)) ids.has_fh2 = true, ids.fh2 = load<std::uint64_t>(body + op.fh2_at);
    if (fits(op.node_at)) ids.has_node2 = true, ids.node2 = load<std::uint64_t>(body + op.node_at);
    return ids;
  }

  // FORGET and BATCH_FORGET: the kernel gives lookups back; the instance hears of those it may
  // forget (ids.h: never one the kernel still holds).
  void forward_forgets(const char* msg, std::size_t len, std::uint32_t opcode) {
    std::vector<fuse_forget_one> out;
    auto one = [&](std::uint64_t ward, std::uint64_t n) {
      auto f = nodes_.forget(ward, n);
      if (f.count == 0) return;
      out.push_back({f.fs, f.count});
      if (journaling()) {
        Journaled j;
        j.ids.node = ward;
        j.forget = f.count;
        journal(std::move(j));
      }
    };
    const char* body = msg + sizeof(fuse_in_header);
    std::size_t blen = len - sizeof(fuse_in_header);
    if (opcode == FUSE_FORGET) {
      if (blen >= sizeof(fuse_forget_in))
        one(load<fuse_in_header>(msg).nodeid, load<fuse_forget_in>(body).nlookup);
    } else if (blen >= sizeof(fuse_batch_forget_in)) {
      auto b = load<fuse_batch_forget_in>(body);
      std::size_t have = (blen - sizeof b) / sizeof(fuse_forget_one);
      for (std::size_t i = 0; i < std::min<std::size_t>(b.count, have); ++i) {
        auto f = load<fuse_forget_one>(body + sizeof b + i * sizeof(fuse_forget_one));
        one(f.nodeid, f.nlookup);
      }
    }
    if (out.empty()) return;
    if (out.size() == 1 || init_out_.minor < 16) {  // BATCH_FORGET is 7.16's
      for (auto& f : out) forget_in_fs(f.nodeid, f.nlookup);
      return;
    }
    fuse_batch_forget_in b{};
    b.count = static_cast<std::uint32_t>(out.size());
    std::vector<char> m = message(FUSE_BATCH_FORGET, ward_unique(), 0, &b, sizeof b);
    const char* p = reinterpret_cast<const char*>(out.data());
    m.insert(m.end(), p, p + out.size() * sizeof(fuse_forget_one));
    auto h = load<fuse_in_header>(m.data());
    h.len = static_cast<std::uint32_t>(m.size());
    store(m.data(), h);
    (void)!::send(fs_, m.data(), m.size(), MSG_NOSIGNAL | MSG_DONTWAIT);  // lost with a dying instance: harmless
  }

  // One request from the kernel. Returns true when the mount is gone.
  Result<bool> from_kernel() {
    ssize_t n = ::read(kfd_, buf_.data(), buf_.size());
    if (n < 0) {
      if (errno == ENODEV) return true;  // unmounted, or aborted through /sys/fs/fuse/connections
      if (errno == EINTR || errno == EAGAIN || errno == ENOENT) return false;
      return fail(Errc::misuse, errno_text("read /dev/fuse", errno));
    }
    if (static_cast<std::size_t>(n) < sizeof(fuse_in_header) ||
        load<fuse_in_header>(buf_.data()).len != static_cast<std::size_t>(n))
      return fail(Errc::violation, "short read from /dev/fuse");
    ++stats_.requests;
    auto in = load<fuse_in_header>(buf_.data());
    const OpInfo* op = detail::op_info(in.opcode);
    if (!op) {
      answer(in.unique, ENOSYS);  // ward cannot check or translate it
      return false;
    }
    switch (in.opcode) {
      case FUSE_FORGET:
      case FUSE_BATCH_FORGET:
        forward_forgets(buf_.data(), n, in.opcode);
        return false;
      case FUSE_INTERRUPT:
        WARD_TRY(send_to_fs(buf_.data(), n));
        return false;
      case FUSE_INIT:
        init_req_.assign(buf_.data(), buf_.data() + n);
        break;
      default:
        break;
    }
    InFlight r;
    r.opcode = in.opcode;
    r.op = op;
    r.ids = ward_ids(buf_.data(), n, *op);
    if (r.opcode == FUSE_RELEASE || r.opcode == FUSE_RELEASEDIR) {
      detail::Handle* h = r.ids.has_fh ? handles_.find(r.ids.fh) : nullptr;
      if (!h || h->stale) {  // nothing to release in this instance
        if (h) handles_.erase(r.ids.fh);
        answer(in.unique, 0);
        return false;
      }
      h->releasing = true;
    }
    if (bool served = WARD_TRY(resumed_listing(in.unique, r, buf_.data(), n)); served) return false;
    if (int err = translate(buf_.data(), *op, r.ids); err != 0) {
      if (op->body != Body::none) answer(in.unique, err);
      return false;
    }
    if (op->body == Body::none) {  // NOTIFY_REPLY: nothing comes back
      WARD_TRY(send_to_fs(buf_.data(), n));
      return false;
    }
    r.asked = detail::asked_size(in.opcode, buf_.data() + sizeof in, n - sizeof in);
    r.deadline = Clock::now() + (in.opcode == FUSE_INIT ? o_.init_timeout : o_.request_timeout);
    r.len = static_cast<std::uint32_t>(n);
    if (static_cast<std::size_t>(n) <= kSmall) {
      r.msg.assign(buf_.data(), buf_.data() + n);
    } else {  // a WRITE: the buffer goes with the request, a spare takes its place
      r.msg = std::move(buf_);
      if (spare_.empty()) {
        buf_.assign(kBufSize, 0);
      } else {
        buf_ = std::move(spare_.back());
        spare_.pop_back();
      }
    }
    // In flight before it is sent: if sending finds the instance gone, a restart re-issues it.
    r.sent_to = instance_;
    auto [it, fresh] = inflight_.insert_or_assign(in.unique, std::move(r));
    (void)fresh;
    WARD_TRY(send_to_fs(it->second.msg.data(), n));
    return false;
  }

  // Sends one message to the instance. When it is gone (EPIPE) the loop notices how on its next
  // turn; a request recorded in flight is then re-issued or answered by the restart.
  Result<void> send_to_fs(const char* msg, std::size_t n) {
    if (::send(fs_, msg, n, MSG_NOSIGNAL) == static_cast<ssize_t>(n)) return {};
    int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK) return fs_failed(Errc::hung, "the file system stopped reading requests");
    if (e == EPIPE || e == ECONNRESET) return {};
    return fs_failed(Errc::violation, errno_text("send to the file system", e));
  }

  // ---- file system -> kernel --------------------------------------------------------------------

  // What is wrong with the message of `n` bytes in buf_ as a message at all ("" if nothing).
  std::string check_header(ssize_t n) {
    if (static_cast<std::size_t>(n) > buf_.size()) return "oversized message (" + std::to_string(n) + " bytes)";
    if (static_cast<std::size_t>(n) < sizeof(fuse_out_header))
      return "truncated message (" + std::to_string(n) + " bytes)";
    auto oh = load<fuse_out_header>(buf_.data());
    if (oh.len != static_cast<std::size_t>(n))
      return "header length " + std::to_string(oh.len) + " but " + std::to_string(n) + " bytes arrived";
    if (oh.unique == 0 ? (oh.error <= 0 || oh.error >= FUSE_NOTIFY_CODE_MAX) : (oh.error > 0 || oh.error <= -512))
      return (oh.unique == 0 ? "notification with code " : "reply with error ") + std::to_string(oh.error);
    return "";
  }

  // One message from the file system, validated before the kernel sees it.
  Result<void> from_fs() {
    ssize_t n = ::recv(fs_, buf_.data(), buf_.size(), MSG_TRUNC | MSG_DONTWAIT);
    if (n < 0) {
      // ECONNRESET: it closed its end (exited); the pidfd or POLLHUP reports how.
      if (errno == EAGAIN || errno == EINTR || errno == ECONNRESET) return {};
      return fs_failed(Errc::violation, errno_text("recv from the file system", errno));
    }
    if (n == 0) return {};  // closed: the pidfd reports the exit
    if (static_cast<std::size_t>(n) >= sizeof(fuse_out_header) && static_cast<std::size_t>(n) <= buf_.size()) {
      auto oh = load<fuse_out_header>(buf_.data());
      if (oh.len > static_cast<std::size_t>(n) && oh.len <= buf_.size()) {
        n = WARD_TRY(rest_of(n, oh.len));
        if (n < 0) return {};  // the file system was restarted meanwhile
      }
    }
    if (auto bad = check_header(n); !bad.empty()) return fs_failed(Errc::violation, bad);
    auto oh = load<fuse_out_header>(buf_.data());
    std::size_t body = n - sizeof oh;
    if (oh.unique == 0) return notification(n);
    if (oh.unique & kIntReqBit) {  // the answer to an INTERRUPT: EAGAIN or ENOSYS, no body
      if (!inflight_.contains(oh.unique & ~std::uint64_t{kIntReqBit}) || body != 0)
        return fs_failed(Errc::violation, "reply to an interrupt that was never sent");
      return to_kernel(buf_.data(), n);
    }
    auto it = inflight_.find(oh.unique);
    if (it == inflight_.end())
      return fs_failed(Errc::violation,
                       "reply with unique id " + std::to_string(oh.unique) + ", not a request in flight");
    InFlight& req = it->second;
    if (oh.error != 0 ? body != 0 : !detail::body_size_ok(req.op->body, req.asked, body, kMaxWrite))
      return fs_failed(Errc::violation, std::string("reply to ") + req.op->name + " with a " +
                                            std::to_string(body) + "-byte body");
    if (req.opcode == FUSE_INIT) {
      if (oh.error != 0) return give_up(Errc::bad_data, "the file system refused INIT");
      fuse_init_out init{};
      std::memcpy(&init, buf_.data() + sizeof oh, std::min(body, sizeof init));
      clamp_init(init, body);
      std::memcpy(buf_.data() + sizeof oh, &init, std::min(body, sizeof init));
      init_out_ = init;
      init_len_ = body;
      init_done_ = true;
      ready_pending_ = true;  // after the reply reaches the kernel
    }
    InFlight done = std::move(req);
    inflight_.erase(it);
    if (auto d = deliver(done, buf_.data(), n); !d) {
      answer(oh.unique, EIO);  // the file system's answer to it was malformed
      return fs_failed(d.error().kind, d.error().detail);
    }
    if (ready_pending_) {
      ready_pending_ = false;
      event(Event::Kind::ready, "serving");
    }
    if (done.msg.size() > kSmall && spare_.size() < 4) spare_.push_back(std::move(done.msg));
    return {};
  }

  // A reply the instance gave (or ward made during a restart) for `r`: its ids become ward's,
  // ward's tables learn what it did, and the kernel gets it.
  Result<void> deliver(const InFlight& r, char* msg, std::size_t n) {
    auto oh = load<fuse_out_header>(msg);
    char* body = msg + sizeof oh;
    std::size_t blen = n - sizeof oh;
    bool release = r.opcode == FUSE_RELEASE || r.opcode == FUSE_RELEASEDIR;
    if (release) handles_.erase(r.ids.fh);  // whatever it answered, the kernel is done with it
    if (oh.error == 0) {
      std::uint64_t node = 0, fh = 0;
      switch (r.op->body) {
        case Body::entry:
          node = entry_reply(r, body);
          break;
        case Body::create:
          node = entry_reply(r, body);
          fh = open_reply(r, body + sizeof(fuse_entry_out), node);
          break;
        case Body::open:
          fh = open_reply(r, body, r.ids.node);
          break;
        case Body::direntplus:
          if (!direntplus_reply(r, body, blen)) return fail(Errc::violation, "malformed READDIRPLUS reply");
          break;
        default:
          break;
      }
      if (r.opcode == FUSE_READDIR || r.opcode == FUSE_READDIRPLUS) record_listing(r, body, blen);
      if (o_.rio && r.ids.has_fh) {
        if (r.opcode == FUSE_WRITE) keep_write(r);
        if (r.opcode == FUSE_FLUSH || r.opcode == FUSE_FSYNC || r.opcode == FUSE_RELEASE) made_durable(r.ids.fh);
      }
      auto names = names_of(r, init_out_.minor);
      if (r.op->names == detail::Names::remove) nodes_.unlinked(r.ids.node, names.name);
      if (r.op->names == detail::Names::rename) nodes_.renamed(r.ids.node, names.name, r.ids.node2, names.to);
      if (r.op->journal && journaling() && !(r.opcode == FUSE_LOOKUP && node == 0)) {
        Journaled j;
        j.msg = with_ward_ids(r);
        j.op = r.op;
        j.opcode = r.opcode;
        j.ids = r.ids;
        j.node = node;
        j.fh = r.opcode == FUSE_OPEN || r.opcode == FUSE_CREATE ? fh : 0;
        journal(std::move(j));
      }
    }
    ++stats_.replies;
    return to_kernel(msg, n);
  }

  // An entry the instance returned: ward's node id (and the generation the kernel first saw) in
  // place of the instance's. Returns ward's id (0 for a negative entry).
  std::uint64_t entry_reply(const InFlight& r, char* at) {
    auto e = load<fuse_entry_out>(at);
    if (e.nodeid == 0) return 0;  // LOOKUP's negative entry: nothing to count
    std::string_view name = names_of(r, init_out_.minor).name;
    std::uint64_t id = nodes_.entry(e.nodeid, r.ids.node, name, e.generation, e.attr.mode & S_IFMT);
    e.nodeid = id;
    e.generation = nodes_.find(id)->generation;
    store(at, e);
    return id;
  }

  std::uint64_t open_reply(const InFlight& r, char* at, std::uint64_t node) {
    auto o = load<fuse_open_out>(at);
    const char* body = r.msg.data() + sizeof(fuse_in_header);
    detail::Handle h;
    h.fs = o.fh;
    h.node = node;
    h.flags = load<std::uint32_t>(body);  // fuse_open_in.flags and fuse_create_in.flags lead
    h.dir = r.opcode == FUSE_OPENDIR;
    o.fh = handles_.add(h);
    store(at, o);
    return o.fh;
  }

  // READDIRPLUS carries an entry per name: each becomes ward's like a LOOKUP's. "." and ".." are
  // not counted by the kernel, so ward gives them no node id at all (the kernel then skips them).
  bool direntplus_reply(const InFlight& r, char* body, std::size_t n) {
    std::size_t at = 0;
    while (at < n) {
      if (n - at < FUSE_NAME_OFFSET_DIRENTPLUS) return false;
      auto d = load<fuse_direntplus>(body + at);
      std::size_t size = FUSE_DIRENTPLUS_SIZE(&d);
      if (d.dirent.namelen == 0 || d.dirent.namelen > 1024 || size > n - at) return false;
      std::string_view name(body + at + FUSE_NAME_OFFSET_DIRENTPLUS, d.dirent.namelen);
      if (d.entry_out.nodeid != 0) {
        if (name == "." || name == "..") {
          d.entry_out.nodeid = 0;
        } else {
          std::uint64_t id = nodes_.entry(d.entry_out.nodeid, r.ids.node, name,
                                          d.entry_out.generation, d.entry_out.attr.mode & S_IFMT);
          if (journaling()) {  // a replay binds it as a LOOKUP of the name would
            Journaled j;
            j.msg = message(FUSE_LOOKUP, 0, r.ids.node, nullptr, 0, name);
            j.op = detail::op_info(FUSE_LOOKUP);
            j.opcode = FUSE_LOOKUP;
            j.ids.node = r.ids.node;
            j.node = id;
            journal(std::move(j));
          }
          d.entry_out.nodeid = id;
          d.entry_out.generation = nodes_.find(id)->generation;
        }
        store(body + at, d.entry_out);
      }
      at += size;
    }
    return true;
  }

  // A notification: node ids in it become ward's; one naming a node ward does not know is
  // dropped (the kernel cannot have it cached).
  Result<void> notification(std::size_t n) {
    auto oh = load<fuse_out_header>(buf_.data());
    char* body = buf_.data() + sizeof oh;
    std::size_t blen = n - sizeof oh;
    auto map = [&](std::size_t at) {
      if (blen < at + 8) return false;
      std::uint64_t id = nodes_.to_ward(load<std::uint64_t>(body + at));
      if (id == 0) return false;
      store(body + at, id);
      return true;
    };
    bool keep = true;
    switch (oh.error) {
      case FUSE_NOTIFY_INVAL_INODE: keep = map(offsetof(fuse_notify_inval_inode_out, ino)); break;
      case FUSE_NOTIFY_INVAL_ENTRY: keep = map(offsetof(fuse_notify_inval_entry_out, parent)); break;
      case FUSE_NOTIFY_DELETE:
        keep = map(offsetof(fuse_notify_delete_out, parent)) && map(offsetof(fuse_notify_delete_out, child));
        break;
      case FUSE_NOTIFY_STORE: keep = map(offsetof(fuse_notify_store_out, nodeid)); break;
      case FUSE_NOTIFY_RETRIEVE: keep = map(offsetof(fuse_notify_retrieve_out, nodeid)); break;
      default: break;  // POLL (a poll handle, not a node) and newer codes: the kernel checks them
    }
    if (!keep) return {};
    return to_kernel(buf_.data(), n);
  }

  // libfuse splices large replies (splice(pipe -> fd), one call); into a SEQPACKET socket the
  // kernel sends that as several datagrams of at most 16 pipe buffers each (splice_to_socket).
  // The mount's max_read keeps READ replies within one datagram; this joins the rest. Returns
  // the message's length once whole, or -1 when the file system failed and was restarted.
  Result<ssize_t> rest_of(std::size_t have, std::size_t want) {
    auto deadline = Clock::now() + o_.request_timeout;
    auto broken = [&](std::size_t got) -> Result<ssize_t> {
      WARD_TRY(fs_failed(Errc::violation, "header length " + std::to_string(want) + " but " +
                                              std::to_string(got) + " bytes arrived"));
      return -1;
    };
    while (have < want) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      pollfd p{fs_, POLLIN, 0};
      int r = left > 0 ? ::poll(&p, 1, static_cast<int>(left)) : 0;
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0 || !(p.revents & POLLIN)) return broken(have);
      ssize_t n = ::recv(fs_, buf_.data() + have, buf_.size() - have, MSG_TRUNC | MSG_DONTWAIT);
      if (n <= 0 || have + n > want) return broken(have + std::max<ssize_t>(n, 0));
      have += n;
      ++stats_.joined;
    }
    return static_cast<ssize_t>(have);
  }

  Result<void> to_kernel(const char* msg, std::size_t n) {
    if (::write(kfd_, msg, n) != static_cast<ssize_t>(n) && errno != ENOENT)
      log(errno_text("the kernel refused a reply", errno));
    return {};
  }

  const Options& o_;
  std::vector<char> buf_;
  std::vector<std::vector<char>> spare_;  // read buffers given back by finished WRITEs
  int kfd_ = -1;
  detail::FsProcess fs_proc_;
  int fs_ = -1, pidfd_ = -1;  // fs_proc_'s socket and pidfd (owned there)
  int status_ = 0;
  bool mounted_ = false, init_done_ = false, ready_pending_ = false;
  bool gone_ = false;  // the kernel's connection went away during a failure: end as unmounted
  Clock::time_point init_deadline_;
  std::vector<char> init_req_;  // the kernel's INIT, replayed to every restarted instance
  std::vector<Journaled> journal_;
  std::size_t journal_bytes_ = 0;
  bool journal_dropped_ = false;
  std::vector<detail::Snapshot> snapshots_;
  std::unique_ptr<rio::Heap> rio_heap_;  // --rio: kept writes
  std::filesystem::path rio_dir_;
  std::unordered_map<std::uint64_t, std::vector<Kept>> kept_;  // by ward file handle, in order
  std::size_t rio_bytes_ = 0;
  bool rio_full_ = false;
  fuse_init_out init_out_{};    // what the kernel was told (after ward's clamp)
  std::size_t init_len_ = 0;
  std::unordered_map<std::uint64_t, InFlight> inflight_;
  detail::Nodes nodes_;
  detail::Handles handles_;
  std::deque<Clock::time_point> restart_times_;
  std::uint64_t ward_calls_ = 0;
  std::string refused_what_;     // the requests the current restart answered itself, for the log
  std::uint64_t instance_ = 0;  // instances started so far; the current one's number
  Stats stats_;
};

}  // namespace

std::vector<std::string> substitute(const std::vector<std::string>& command, const std::string& with) {
  std::vector<std::string> out;
  for (std::string a : command) {
    for (std::size_t at = a.find("{}"); at != std::string::npos; at = a.find("{}", at + with.size()))
      a.replace(at, 2, with);
    out.push_back(std::move(a));
  }
  return out;
}

Result<Stats> run_fuse(const Options& options) {
  Relay relay(options);
  return relay.run();
}

}  // namespace ward::fuse
