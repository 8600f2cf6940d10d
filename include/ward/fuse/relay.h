// ward fuse: runs an unmodified FUSE file system as a supervised extension.
//
// Contract. run_fuse() mounts `mountpoint` itself (mount(2) on a /dev/fuse fd it opened; it needs
// root and says so when it is not), starts `command` (src/fuse/launch.h: `{}` becomes `/dev/fd/3`,
// one end of a SOCK_SEQPACKET socket pair; a command without `{}` mounts itself through
// ward-fusermount; each instance runs in its own PID namespace), and relays the FUSE protocol
// between the kernel's connection and that socket, one message per datagram (docs/fuse.md says
// why libfuse3 accepts a socket there). It validates every reply before the kernel sees it: the
// length in its header equals what arrived, the unique id names a request in flight, the error is
// a plain errno, and the body has the size the opcode allows. Every request has a deadline
// (`request_timeout`; `init_timeout` for INIT). The mount carries max_read=131072; the file system's
// pipes hold at most 16 buffers (a seccomp filter), so no reply libfuse splices into the socket is
// split; split replies (other splicers) are joined (docs/fuse.md).
//
// The kernel only ever sees ward's node ids and file handles, mapped to the file system's. When
// the file system fails (exits, dies, misses a deadline, sends a malformed message) after INIT,
// ward keeps the kernel's connection, starts the command again, replays the kernel's INIT (the new
// instance must negotiate the same protocol, flags and at least the same max_write, else ward
// gives up), finds every node the kernel holds again by name, reopens every open handle with its
// original flags, and re-issues the requests the old instance held where that is safe (the table
// in src/fuse/protocol.cc; docs/fuse.md says which and why); the others are answered EIO. A node
// the new instance cannot find again answers ESTALE; a handle that cannot be reopened, EIO. A
// directory listed partly before the failure is finished by ward from the new instance's listing
// minus what the kernel consumed. With `journal`, everything the kernel was told since the mount is
// replayed into the new instance first (for file systems that keep state in memory); with `rio`,
// acknowledged writes not yet flushed are written again (for write-back file systems).
// At most `max_restarts` restarts within `restart_window`; past that (or with max_restarts 0, or a
// failure before INIT was answered) every request in flight is answered with EIO, the mount is
// detached and run_fuse returns an error of kind crashed/exited/hung/violation/bad_data.
//
// run_fuse returns normally (Ok) when the mount goes away (`umount`, `fusermount3 -u`) or when
// `stop` becomes readable (the CLI passes a signalfd for SIGINT/SIGTERM): it then unmounts, asks
// the file system to exit (SIGTERM, SIGKILL after `exit_timeout`) and reaps it. Threads: one; it
// blocks the calling thread until the mount ends. The child is in its own process group and dies
// with ward (PR_SET_PDEATHSIG). Nothing it creates outlives the call except a mount the kernel still
// holds busy after a lazy unmount (the --rio heap and the --snapshot copies go with it).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ward/core/error.h"
#include "ward/fuse/user.h"

namespace ward::fuse {

struct Stats;

// What happened to the mount, for hosts that show or record it (`ward fuse` writes its status
// file from these). Called on the relay's thread, synchronously: keep it short and do not call
// back into the relay.
struct Event {
  enum class Kind : std::uint8_t {
    ready,           // the file system answered INIT: the mount serves requests
    failed,          // the file system failed (detail: the cause in words)
    restarted,       // a new instance took over (detail: what was found, re-issued, refused)
    restart_failed,  // an attempt to restart failed (detail: why); another may follow
    gave_up,         // no more restarts: the mount is going away (detail: the cause)
    unmounted,       // the mount ended normally
    journal_dropped, // --journal: the journal was let go (detail: why); restarts find nodes by name
  };
  Kind kind;
  std::string detail;
  const Stats* stats;  // counters at the time of the event
};

struct Options {
  std::string mountpoint;
  std::vector<std::string> command;  // argv of the file system; `{}` becomes /dev/fd/N
  std::chrono::milliseconds request_timeout{30'000};
  std::chrono::milliseconds init_timeout{10'000};
  // SIGTERM -> SIGKILL when the mount is done; generous, since many file systems write what they
  // held only then (fuse-zip its archive), and the mount no longer waits on them.
  std::chrono::milliseconds exit_timeout{60'000};
  bool allow_other = false;          // mount option allow_other (others may use the mount)
  bool default_permissions = false;  // mount option default_permissions (kernel checks modes)
  unsigned max_restarts = 10;        // restarts allowed within restart_window; 0: never restart
  std::chrono::milliseconds restart_window{60'000};
  // Journal (docs/fuse.md, "Journal"): keep every request that changed the file system or bound an
  // id, from the mount on, and replay them all into each restarted instance before anything else,
  // so that a file system that keeps state in memory (an archive written at unmount, an image with
  // cached metadata) comes back as the kernel last saw it. `snapshots` are files the file system
  // writes in place: copied at the start, put back before each replay. Past `journal_limit` bytes
  // the journal is dropped (logged) and restarts find nodes by name only.
  bool journal = false;
  std::size_t journal_limit = std::size_t{256} << 20;
  std::vector<std::string> snapshots;
  // --rio (docs/fuse.md, "Acknowledged writes in a Rio heap"): every WRITE the kernel was told
  // succeeded is kept in a rio::Heap (write-protected from ward's own stray stores, in a private
  // directory under /dev/shm) until a FLUSH, FSYNC or RELEASE of its handle succeeds, and written
  // again into the restarted instance through the reopened handle. Past `rio_size` bytes of kept
  // writes ward stops keeping (logged). Not with `journal` (which replays every write anyway).
  bool rio = false;
  std::size_t rio_size = std::size_t{64} << 20;
  // Unless --no-hide-unlinked (docs/fuse.md, "Unlinked while open"): an UNLINK (or a RENAME
  // over) the last name of a file ward knows to be open becomes a RENAME to a hidden name, so that
  // a restart can find the file again. A directory removed or renamed over loses its hidden names
  // first, so it is as empty to the file system as it is to the kernel.
  bool hide_unlinked = true;
  int log_fd = -1;                   // one line per event (failure, restart, unmount); -1: none
  // Where the file system's stdout and stderr go: every instance writes into a pipe that a thread
  // of ward's drains to this descriptor (by number: a file put at that number later is followed),
  // each line led by "ward fuse MOUNTPOINT: fs: " and every byte that is not printable text
  // written as \xHH, so that it cannot drive a terminal (src/fuse/fs_output.h). -1: discarded.
  int fs_output_fd = 2;
  // What every instance reads on its stdin: these bytes from the start, then end of file (a
  // sealed memfd of its own per instance, so a restarted instance reads the same). nullopt:
  // /dev/null. Never ward's own stdin: a restarted instance has nobody to ask, and a file system
  // reading a terminal from its own process group would be stopped (SIGTTIN) with its mount
  // waiting on it. At most kMaxFsInput bytes (else launch fails, misuse).
  std::optional<std::string> fs_input;
  static constexpr std::size_t kMaxFsInput = std::size_t{1} << 20;
  int stop_fd = -1;                  // readable => unmount and return Ok; -1: none
  std::function<void(const Event&)> on_event;  // may be empty
  // The sandbox (docs/fuse.md, "Sandbox"): the file system runs in a minimal root of its own that
  // holds the system's programs and libraries (read-only), a few /etc files, /dev/null & co., a
  // fresh /proc, an empty /tmp, and only these host paths: `see` read-write, `see_ro` read-only,
  // and with `auto_see` the paths its command line names (a directory itself, a file with its
  // directory). Everything else of the host is absent (ENOENT). false: the host's whole tree.
  bool sandbox = true;
  bool auto_see = true;
  // At most this many tasks (processes and threads) in the file system at once, by a pids cgroup
  // below ward's own (docs/fuse.md, "Sandbox"): a fork bomb in it would otherwise take every PID
  // of the host. 0: no bound. Where no pids hierarchy can be written, the log says so and the
  // file system runs unbounded.
  unsigned max_tasks = 4096;
  // At most this many bytes of memory (anonymous memory and the page cache charged to it) for the
  // file system, by a memory cgroup below ward's own: one that allocates without end would
  // otherwise push the whole host into reclaim and swap first. Over it, the kernel's OOM killer
  // kills it inside its own cgroup, and ward restarts it as after any crash. 0: no bound;
  // kHalfOfMemory (the default): half of the machine's memory. Where no memory hierarchy can be
  // written, the log says so and the file system runs unbounded.
  static constexpr std::uint64_t kHalfOfMemory = ~std::uint64_t{0};
  std::uint64_t max_memory = kHalfOfMemory;
  std::vector<std::string> see, see_ro;
  // The user the file system runs as (docs/fuse.md, "Running as a user"; find_user makes one):
  // after its sandbox is built it takes that user's ids and groups and holds no capability at
  // all, with no_new_privs set (a set-user-id program cannot give root back). It then reaches only
  // what that user may, of what it sees. Empty: root, as ward runs.
  std::optional<User> user;
};

struct Stats {
  std::uint64_t requests = 0;         // requests read from the kernel
  std::uint64_t replies = 0;          // replies from the file system passed to the kernel
  std::uint64_t answered_by_ward = 0; // requests ward answered itself (EIO after a failure)
  std::uint64_t joined = 0;           // datagrams joined to a reply a splice had split
  std::uint64_t restarts = 0;         // restarts of the file system (attempts, successful or not)
  std::uint64_t reissued = 0;         // requests in flight at a failure sent again to a new instance
  std::uint64_t refused = 0;          // requests in flight at a failure answered by ward instead
  std::uint64_t stale_nodes = 0;      // nodes a restarted instance could not find again
  std::uint64_t journal_entries = 0;  // requests in the journal now (0 without --journal)
  std::uint64_t journal_bytes = 0;
  std::uint64_t replayed = 0;         // journal entries replayed into restarted instances
  std::uint64_t rio_kept = 0;         // --rio: writes kept now (not yet made durable by the FS)
  std::uint64_t rio_rewritten = 0;    // --rio: kept writes written again into restarted instances
  std::string last_failure;           // the cause of the last failure, in words
  std::string journal_dropped;        // --journal: why the journal was let go; empty while it is kept
};

// Blocks until the mount ends; see the contract above.
[[nodiscard]] Result<Stats> run_fuse(const Options& options);

// `{}` in each argument replaced by `with` (every occurrence, as find -exec does).
[[nodiscard]] std::vector<std::string> substitute(const std::vector<std::string>& command,
                                                  const std::string& with);

}  // namespace ward::fuse
