// ward-fuse-hostile MODE /dev/fd/N: a FUSE file system that misbehaves on purpose, speaking the
// raw protocol on the fd `ward fuse` hands it (src/fuse/relay_test.cc drives it). Modes:
//   exit          exits at once (status 7)
//   silent-init   reads INIT and never answers
//   truncated     answers INIT with a 4-byte message
//   oversized     answers INIT with a 3 MiB message
//   lying-len     answers INIT with a header whose length is not the message's
//   wrong-unique  answers INIT, then answers the next request with another unique id
//   unsent        answers INIT, then sends a reply to a request the kernel never sent, first
//   bad-size      answers INIT, then answers GETATTR with a 3-byte body
//   hang          answers INIT, then never answers anything
//   good          answers INIT, GETATTR of the root; ENOSYS to the rest
//   split         as good, but each GETATTR reply in two datagrams (as a splice into the socket
//                 sends a large reply)
// Modes for restarts (`ward fuse` starts the command again after a failure); STATE is a file
// path whose existence tells an instance that an earlier one ran:
//   crash-once:STATE    as good, but the first instance dies (SIGABRT) on its first GETATTR
//   narrow-init:STATE   as crash-once, and later instances offer a smaller max_write in INIT
//   crash-always        as good, but dies (SIGABRT) on every GETATTR
//   die-later:STATE     as crash-once, and later instances exit at once (status 7): no restart
//                       can succeed
//   listing:STATE       as good, and the root lists 200 files f000..f199. Each instance's
//                       directory handles carry a nonce of its own, and a READDIR with a handle
//                       it did not give out aborts it (as a high-level libfuse FS crashes on the
//                       dead pointer); the first instance also dies on its second READDIR, in the
//                       middle of a listing
// A mode for a file system that uses its own mount (as go-fuse does; restart_test.cc):
//   self-stat:STATE PATH  as good, and once the first instance has answered INIT a second thread
//                       stats PATH/self (PATH: the mount point, seen unsandboxed), a LOOKUP this
//                       file system never answers: that thread waits on the file system's own
//                       mount until ward answers it
//   self-open:STATE PATH  as good, LOOKUP of "self" a regular file and OPEN of it a handle; once
//                       the first instance has answered INIT a second thread opens PATH/self,
//                       creates STATE.open and holds the file open: killed, the instance closes
//                       it on its way out, and the kernel sends FLUSH and waits for the answer.
//                       The first instance never answers LOOKUP of "hang"
// A mode for interrupts (relay_test.cc):
//   interrupts:STATE    as good, but LOOKUP of "slow" is answered only when interrupted: its first
//                       INTERRUPT is answered EAGAIN (the kernel sends it again), at the second the
//                       LOOKUP is answered EINTR and then that INTERRUPT EAGAIN as well (a reply
//                       and an interrupt that crossed). The first instance answers LOOKUP of "lie"
//                       with a reply to an INTERRUPT the kernel never sent (then nothing), and
//                       dies (SIGABRT) at the INTERRUPT of a LOOKUP of "fatal", which later
//                       instances treat as "slow"
// A mode for the end of a mount (relay_test.cc):
//   slow-exit:STATE     as good, but ignores SIGTERM, and once its device reads end-of-file (the
//                       mount is gone) takes 1.5 s, as a file system writing what it held at
//                       unmount does (fuse-zip its archive), then creates STATE.exited and exits 0
// A mode for notifications (relay_test.cc):
//   notify-rename       as good, LOOKUP of "a" a regular file; RENAME (and RENAME2) is answered
//                       0, right after a NOTIFY_INVAL_ENTRY of "a" in the root: the kernel takes
//                       that notification only once the rename lets go of the root's lock, i.e.
//                       once the RENAME's reply behind it has reached the kernel (rclone does so)
// A mode for hidden names (restart_test.cc), a file system that answers out of order, as one with
// many threads does:
//   late-unlink         as good, with a directory "d" in the root holding one file, "f" at first:
//                       LOOKUP, GETATTR, OPEN, FLUSH, RELEASE of them, RENAME of the file within
//                       "d", RMDIR of "d" (ENOTEMPTY while the file has a name). An UNLINK of the
//                       file under a name of ward's (.ward-hidden-*) is done and answered 300 ms
//                       later, while other requests are answered meanwhile; one of a name that is
//                       gone by then is answered ENOENT
// A mode for what a file system prints (cli_test.cc):
//   chatty              as good, and at its start writes to stderr a line full of terminal escapes
//                       (kChattyLine) and to stdout "prompt: " with no newline; a LOOKUP of
//                       "say-WORD" writes "said WORD\n" to stderr, one of "flood" starts a thread
//                       that writes 8 MiB of lines ("y" * 4095 and a newline) to stderr; each such
//                       LOOKUP is answered ENOENT
//   syslog              as good, and at its start sends "said to syslog \x1b[31m" to syslog(3)
//                       (openlog "ward-hostile", LOG_PID; LOG_ERR), which in the sandbox is ward's
//   read-stdin:STATE    as crash-once, and each instance first reads its stdin until end of file
//                       (3 s at most) and writes to stderr "stdin: [BYTES] then end of file" (a
//                       newline in BYTES as '|'), or "stdin: [BYTES] and no end of file within 3 s"
// A mode for the sandbox (src/fuse/sandbox_test.cc): what the file system can see of the host.
//   probe               as good, and LOOKUP of the name "N" answers a regular file whose size is
//                       1000 * (errno of open(PATH, O_RDONLY)) + (errno of open(PATH, O_WRONLY)),
//                       0 for success, PATH the N-th of the ':'-separated WARD_PROBE variable.
//                       Arguments after /dev/fd/N are ignored (they are for ward's auto rule).
//                       PATH "@mount=DIR" tries mount(2) of a tmpfs on DIR (unmounted again),
//                       whose errno is then both fields; "@mknod=PATH" makes a character
//                       device 1,3 (null's numbers) at PATH, opens it for writing and removes
//                       it: 1000 * (errno of mknod) + (errno of that open, or of mknod).
//                       "@call=NAME" makes one call (or, "forks", 64 children; "alloc", a child that
//                       touches 1 GiB) of kCalls below (each harmless if it works)
//                       whose errno (0: it worked; 1: "@cap=N" held) is both fields.
#include <linux/bpf.h>
#include <linux/fuse.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/sysmacros.h>
#include <syslog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>
#include <fcntl.h>

#include <csignal>
#include <string_view>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

int fd = -1;

void send_reply(std::uint64_t unique, int error, const void* body, std::size_t n) {
  std::vector<char> m(sizeof(fuse_out_header) + n);
  fuse_out_header oh{static_cast<std::uint32_t>(m.size()), -error, unique};
  std::memcpy(m.data(), &oh, sizeof oh);
  if (n) std::memcpy(m.data() + sizeof oh, body, n);
  (void)!::write(fd, m.data(), m.size());
}

void answer_init(const fuse_in_header& in, const char* body, std::uint32_t max_write = 65536) {
  auto* ii = reinterpret_cast<const fuse_init_in*>(body);
  fuse_init_out out{};
  out.major = FUSE_KERNEL_VERSION;
  out.minor = ii->minor;
  out.max_readahead = ii->max_readahead;
  out.max_write = max_write;
  send_reply(in.unique, 0, &out, sizeof out);
}

// The "listing" mode's directory requests; false for anything else.
bool list_dir(const fuse_in_header& in, const char* body, bool later) {
  static const std::uint64_t nonce = std::random_device{}();
  static std::uint64_t handles = 0, readdirs = 0;
  constexpr std::uint64_t kFiles = 200;
  switch (in.opcode) {
    case FUSE_OPENDIR: {
      fuse_open_out o{};
      o.fh = nonce << 32 | ++handles;
      send_reply(in.unique, 0, &o, sizeof o);
      return true;
    }
    case FUSE_RELEASEDIR: send_reply(in.unique, 0, nullptr, 0); return true;
    case FUSE_LOOKUP: {
      unsigned n = 0;
      if (std::sscanf(body, "f%3u", &n) != 1 || n >= kFiles) {
        send_reply(in.unique, ENOENT, nullptr, 0);
        return true;
      }
      fuse_entry_out e{};
      e.nodeid = e.attr.ino = 100 + n;
      e.generation = 1;
      e.attr.mode = S_IFREG | 0644;
      e.attr.nlink = 1;
      send_reply(in.unique, 0, &e, sizeof e);
      return true;
    }
    case FUSE_READDIR: {
      const auto* ri = reinterpret_cast<const fuse_read_in*>(body);
      if (ri->fh >> 32 != nonce) std::abort();  // not a handle of this instance
      if (++readdirs == 2 && !later) std::abort();
      std::vector<char> out;
      for (std::uint64_t i = ri->offset; i < kFiles; ++i) {
        char name[8];
        std::snprintf(name, sizeof name, "f%03u", static_cast<unsigned>(i));
        const std::size_t len = std::strlen(name), size = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + len);
        if (out.size() + size > ri->size) break;
        const std::size_t at = out.size();
        out.resize(at + size);
        fuse_dirent d{};
        d.ino = 100 + i;
        d.off = i + 1;
        d.namelen = static_cast<std::uint32_t>(len);
        d.type = DT_REG;
        std::memcpy(out.data() + at, &d, FUSE_NAME_OFFSET);
        std::memcpy(out.data() + at + FUSE_NAME_OFFSET, name, len);
      }
      send_reply(in.unique, 0, out.data(), out.size());
      return true;
    }
    default: return false;
  }
}

}  // namespace

// What a sandboxed file system must not be able to do to the host, one harmless attempt each:
// 0 if it worked, else its errno.
int errno_of(long rc) { return rc < 0 ? errno : 0; }
int closed(long fd) { return fd < 0 ? errno : (::close(static_cast<int>(fd)), 0); }

struct Call {
  const char* name;
  int (*attempt)();
};
constexpr Call kCalls[] = {
    {"bpf", [] {  // a 1-entry array map: CAP_SYS_ADMIN alone may load programs that read the kernel
       bpf_attr a{};
       a.map_type = BPF_MAP_TYPE_ARRAY, a.key_size = 4, a.value_size = 4, a.max_entries = 1;
       return closed(::syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof a));
     }},
    {"perf", [] {  // system-wide counting on CPU 0
       perf_event_attr a{};
       a.type = PERF_TYPE_SOFTWARE, a.size = sizeof a, a.config = PERF_COUNT_SW_CPU_CLOCK, a.disabled = 1;
       return closed(::syscall(SYS_perf_event_open, &a, -1, 0, -1, 0));
     }},
    {"syslog", [] { return errno_of(::klogctl(10, nullptr, 0)); }},  // SYSLOG_ACTION_SIZE_BUFFER
    {"fanotify", [] { return closed(::fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC, O_RDONLY)); }},
    {"keyctl", [] { return errno_of(::syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0)); }},
    {"hostname", [] { return errno_of(::sethostname("ward-probe", 10)); }},  // the test checks the host's
    {"setuid0", [] { return errno_of(::setuid(0)); }},  // root back (a no-op for root)
    {"shm", [] {  // the SysV segment the test made (key in WARD_PROBE_SHM)
       const char* k = std::getenv("WARD_PROBE_SHM");
       return errno_of(::shmget(k ? std::atoi(k) : 0, 0, 0));
     }},
    {"forks", [] {  // up to 64 children at once: EAGAIN when a bound stopped it first
       std::vector<pid_t> kids;
       int err = 0;
       for (int i = 0; i < 64 && err == 0; ++i) {
         pid_t k = ::fork();
         if (k == 0) {
           ::pause();
           ::_exit(0);
         }
         if (k < 0) err = errno;
         else kids.push_back(k);
       }
       for (pid_t k : kids) ::kill(k, SIGKILL), ::waitpid(k, nullptr, 0);
       return err;
     }},
    {"alloc", [] {  // a child touches 1 GiB: ENOMEM when a bound's OOM killer ended it first
       constexpr std::size_t kBytes = std::size_t{1} << 30;
       pid_t k = ::fork();
       if (k == 0) {
         void* m = ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
         if (m == MAP_FAILED) ::_exit(2);
         for (std::size_t i = 0; i < kBytes; i += 4096) static_cast<volatile char*>(m)[i] = 1;
         ::_exit(0);
       }
       if (k < 0) return errno;
       int st = 0;
       while (::waitpid(k, &st, 0) < 0 && errno == EINTR) {}
       return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL ? ENOMEM : EIO;
     }},
    {"tiocsti", [] {  // a character pushed into a terminal's input: a terminal of its own
       int m = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
       if (m < 0) return errno;
       int err = ::grantpt(m) == 0 && ::unlockpt(m) == 0 ? 0 : errno;
       int t = err ? -1 : ::open(::ptsname(m), O_RDWR | O_NOCTTY | O_CLOEXEC);
       if (!err && t < 0) err = errno;
       char c = 'x';
       if (!err) err = errno_of(::ioctl(t, TIOCSTI, &c));
       if (t >= 0) ::close(t);
       ::close(m);
       return err;
     }},
};

// "@cap=N": 1 if capability N is in the effective set (/proc/self/status), else 0.
int cap_held(int n) {
  std::FILE* f = std::fopen("/proc/self/status", "re");
  if (!f) return errno;
  char line[256];
  unsigned long long eff = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "CapEff: %llx", &eff) == 1) break;
  std::fclose(f);
  return static_cast<int>((eff >> n) & 1);
}

// The probe's answer for the N-th path of WARD_PROBE, as attributes (see the modes above).
bool probe_attr(std::uint64_t n, fuse_attr& a) {
  const char* env = std::getenv("WARD_PROBE");
  std::string list = env ? env : "";
  std::size_t start = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    start = list.find(':', start);
    if (start == std::string::npos) return false;
    ++start;
  }
  std::string path = list.substr(start, list.find(':', start) - start);
  if (path.empty()) return false;
  int special = -1;
  if (path.starts_with("@mount=")) {
    std::string dir = path.substr(7);
    special = ::mount("probe", dir.c_str(), "tmpfs", 0, "size=64k") == 0 ? 0 : errno;
    if (special == 0) ::umount2(dir.c_str(), MNT_DETACH);
  }
  if (path.starts_with("@call=")) {
    special = EINVAL;
    for (const Call& c : kCalls)
      if (path.substr(6) == c.name) special = c.attempt();
  }
  if (path.starts_with("@cap=")) special = cap_held(std::atoi(path.c_str() + 5));
  long opened = -1;  // @mknod: the second field
  if (path.starts_with("@mknod=")) {
    std::string at = path.substr(7);
    special = ::mknod(at.c_str(), S_IFCHR | 0600, makedev(1, 3)) == 0 ? 0 : errno;
    opened = special;
    if (special == 0) {
      int f = ::open(at.c_str(), O_WRONLY | O_CLOEXEC);
      opened = f < 0 ? errno : 0;
      if (f >= 0) ::close(f);
      ::unlink(at.c_str());
    }
  }
  auto try_open = [&](int flags) {
    if (special >= 0) return special;
    int f = ::open(path.c_str(), flags | O_CLOEXEC);
    if (f < 0) return errno;
    ::close(f);
    return 0;
  };
  a = fuse_attr{};
  a.ino = n + 2;
  a.mode = S_IFREG | 0644;
  a.nlink = 1;
  a.size = 1000 * static_cast<std::uint64_t>(try_open(O_RDONLY)) +
           static_cast<std::uint64_t>(opened >= 0 ? opened : try_open(O_WRONLY));
  return true;
}

// late-unlink's tree (see the modes above): the root (1), "d" (2), the file (3).
struct LateTree {
  bool dir = true, file = true;
  std::string name = "f";
  struct Held {
    std::chrono::steady_clock::time_point due;
    std::uint64_t unique;
    std::string name;
  };
  std::vector<Held> held;  // UNLINKs of hidden names, answered when due

  static fuse_attr attr(std::uint64_t node) {
    fuse_attr a{};
    a.ino = node;
    a.mode = node == 3 ? S_IFREG | 0644 : S_IFDIR | 0755;
    a.nlink = node == 3 ? 1 : 2;
    return a;
  }
  void entry(std::uint64_t unique, std::uint64_t node) {
    fuse_entry_out e{};
    e.nodeid = node;
    e.generation = 1;
    e.attr = attr(node);
    send_reply(unique, 0, &e, sizeof e);
  }
  // The UNLINKs due by now, done and answered; how long until the next (-1: none held).
  int settle() {
    const auto now = std::chrono::steady_clock::now();
    for (auto it = held.begin(); it != held.end();) {
      if (it->due > now) {
        ++it;
        continue;
      }
      const bool there = file && it->name == name;
      if (there) file = false;
      send_reply(it->unique, there ? 0 : ENOENT, nullptr, 0);
      it = held.erase(it);
    }
    int wait = -1;
    for (const Held& h : held) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(h.due - now).count() + 1;
      wait = wait < 0 ? static_cast<int>(ms) : std::min(wait, static_cast<int>(ms));
    }
    return wait;
  }
  // True when it answered (or held) the request.
  bool handle(const fuse_in_header& in, const char* body) {
    const std::string_view name(body);
    switch (in.opcode) {
      case FUSE_LOOKUP:
        if (in.nodeid == 1 && name == "d" && dir) entry(in.unique, 2);
        else if (in.nodeid == 2 && file && name == this->name) entry(in.unique, 3);
        else send_reply(in.unique, ENOENT, nullptr, 0);
        return true;
      case FUSE_GETATTR: {
        fuse_attr_out a{};
        a.attr = attr(in.nodeid);
        send_reply(in.unique, 0, &a, sizeof a);
        return true;
      }
      case FUSE_OPEN: {
        fuse_open_out o{};
        o.fh = 1;
        send_reply(in.unique, 0, &o, sizeof o);
        return true;
      }
      case FUSE_FLUSH:
      case FUSE_RELEASE:
        send_reply(in.unique, 0, nullptr, 0);
        return true;
      case FUSE_RENAME: {
        const auto* ri = reinterpret_cast<const fuse_rename_in*>(body);
        const char* from = body + sizeof *ri;
        const std::string_view to(from + std::strlen(from) + 1);
        const bool ok = in.nodeid == 2 && ri->newdir == 2 && file && std::string_view(from) == this->name;
        if (ok) this->name = std::string(to);
        send_reply(in.unique, ok ? 0 : ENOENT, nullptr, 0);
        return true;
      }
      case FUSE_UNLINK:
        if (in.nodeid == 2 && name.starts_with(".ward-hidden-")) {
          held.push_back({std::chrono::steady_clock::now() + std::chrono::milliseconds(300), in.unique, std::string(name)});
        } else {
          const bool ok = in.nodeid == 2 && file && name == this->name;
          if (ok) file = false;
          send_reply(in.unique, ok ? 0 : ENOENT, nullptr, 0);
        }
        return true;
      case FUSE_RMDIR:
        if (in.nodeid != 1 || name != "d" || !dir) send_reply(in.unique, ENOENT, nullptr, 0);
        else if (file) send_reply(in.unique, ENOTEMPTY, nullptr, 0);
        else dir = false, send_reply(in.unique, 0, nullptr, 0);
        return true;
      default:
        return false;
    }
  }
};

// OSC title, CSI colour, CR, a C1 CSI in UTF-8, a right-to-left override, a byte that is no UTF-8.
constexpr std::string_view kChattyLine = "starting \x1b]0;owned\x07 \x1b[31mred\r\xc2\x9b\xe2\x80\xae\xff end\n";

int main(int argc, char** argv) {
  bool probe = argc > 3 && std::string(argv[1]) == "probe";
  bool self_stat = argc == 4 && std::string(argv[1]).starts_with("self-stat:");
  bool self_open = argc == 4 && std::string(argv[1]).starts_with("self-open:");
  if ((argc != 3 && !probe && !self_stat && !self_open) || std::sscanf(argv[2], "/dev/fd/%d", &fd) != 1) {
    std::fprintf(stderr, "usage: ward-fuse-hostile MODE /dev/fd/N\n");
    return 2;
  }
  std::string mode = argv[1];
  if (mode == "exit") return 7;
  // A STATE file after the colon: present means an earlier instance ran.
  bool later = false;
  std::string state_path;
  if (auto colon = mode.find(':'); colon != std::string::npos) {
    std::string state = mode.substr(colon + 1);
    state_path = state;
    mode.resize(colon);
    later = ::access(state.c_str(), F_OK) == 0;
    if (!later) ::close(::open(state.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  }
  if (mode == "die-later" && later) return 7;
  if (mode == "slow-exit") std::signal(SIGTERM, SIG_IGN);
  if (mode == "syslog") {
    ::openlog("ward-hostile", LOG_PID, LOG_DAEMON);
    ::syslog(LOG_ERR, "said to syslog \x1b[31m");
    ::closelog();
  }
  if (mode == "read-stdin") {
    std::string got;
    bool ended = false;
    for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
         !ended && std::chrono::steady_clock::now() < end;) {
      pollfd p{0, POLLIN, 0};
      if (::poll(&p, 1, 100) != 1) continue;
      char b[256];
      ssize_t n = ::read(0, b, sizeof b);
      if (n <= 0) ended = true;
      else got.append(b, static_cast<std::size_t>(n));
    }
    std::replace(got.begin(), got.end(), '\n', '|');
    const std::string line = "stdin: [" + got + (ended ? "] then end of file\n" : "] and no end of file within 3 s\n");
    (void)!::write(2, line.data(), line.size());
    mode = "crash-once";
  }
  if (mode == "chatty") {
    (void)!::write(2, kChattyLine.data(), kChattyLine.size());
    (void)!::write(1, "prompt: ", 8);
  }
  bool crash_on_getattr =
      mode == "crash-always" || (!later && (mode == "crash-once" || mode == "narrow-init" || mode == "die-later"));
  std::vector<char> buf(2 << 20);
  std::uint64_t slow = 0;  // interrupts: the unique of the LOOKUP of "slow" held
  int slow_interrupts = 0;
  bool slow_fatal = false;  // interrupts: the first instance dies at that LOOKUP's INTERRUPT
  LateTree late;
  for (;;) {
    if (mode == "late-unlink") {  // answer what is due; wait for a request no longer than that
      pollfd p{fd, POLLIN, 0};
      while (::poll(&p, 1, late.settle()) == 0) {}
    }
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n <= 0 && mode == "slow-exit") {
      ::usleep(1'500'000);
      ::close(::open((state_path + ".exited").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
    }
    if (n <= 0) return 0;
    auto* in = reinterpret_cast<fuse_in_header*>(buf.data());
    const char* body = buf.data() + sizeof *in;
    if (in->opcode == FUSE_INIT) {
      if (mode == "silent-init") continue;
      if (mode == "truncated") {
        (void)!::write(fd, "\4\0\0\0", 4);
        continue;
      }
      if (mode == "oversized") {
        std::vector<char> big(3 << 20);
        auto* oh = reinterpret_cast<fuse_out_header*>(big.data());
        oh->len = static_cast<std::uint32_t>(big.size());
        oh->unique = in->unique;
        (void)!::write(fd, big.data(), big.size());
        continue;
      }
      if (mode == "lying-len") {
        fuse_out_header oh{4096, 0, in->unique};
        (void)!::write(fd, &oh, sizeof oh);
        continue;
      }
      answer_init(*in, body, mode == "narrow-init" && later ? 4096 : 65536);
      if (mode == "unsent") send_reply(in->unique + 1000, 0, nullptr, 0);
      if (self_stat && !later) {
        std::thread([own = std::string(argv[3]) + "/self"] {
          struct stat st;
          (void)::stat(own.c_str(), &st);
        }).detach();
      }
      if (self_open && !later) {
        std::thread([own = std::string(argv[3]) + "/self", mark = state_path + ".open"] {
          if (::open(own.c_str(), O_RDONLY) < 0) return;  // held until the process dies
          ::close(::open(mark.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
          for (;;) ::pause();
        }).detach();
      }
      continue;
    }
    if (self_open && !later && in->opcode == FUSE_LOOKUP && std::string_view(body) == "hang") continue;
    if (self_open && in->opcode == FUSE_LOOKUP && std::string_view(body) == "self") {
      fuse_entry_out e{};
      e.nodeid = 2;
      e.generation = 1;
      e.attr.ino = 2;
      e.attr.mode = S_IFREG | 0644;
      e.attr.nlink = 1;
      send_reply(in->unique, 0, &e, sizeof e);
      continue;
    }
    if (self_open && in->opcode == FUSE_OPEN) {
      fuse_open_out o{};
      o.fh = 1;
      send_reply(in->unique, 0, &o, sizeof o);
      continue;
    }
    if (self_open && (in->opcode == FUSE_FLUSH || in->opcode == FUSE_RELEASE)) {
      send_reply(in->unique, 0, nullptr, 0);
      continue;
    }
    if (self_stat && in->opcode == FUSE_LOOKUP && std::string_view(body) == "self") continue;
    if (mode == "interrupts" && in->opcode == FUSE_LOOKUP &&
        (std::string_view(body) == "slow" || std::string_view(body) == "fatal")) {
      slow = in->unique;
      slow_fatal = !later && std::string_view(body) == "fatal";
      continue;
    }
    if (mode == "interrupts" && !later && in->opcode == FUSE_LOOKUP && std::string_view(body) == "lie") {
      send_reply(in->unique | 1, EAGAIN, nullptr, 0);
      continue;
    }
    if (mode == "interrupts" && in->opcode == FUSE_INTERRUPT) {
      const auto* ii = reinterpret_cast<const fuse_interrupt_in*>(body);
      if (slow == 0 || ii->unique != slow) continue;
      if (slow_fatal) std::abort();
      if (++slow_interrupts >= 2) {
        send_reply(slow, EINTR, nullptr, 0);
        slow = 0;
      }
      send_reply(in->unique, EAGAIN, nullptr, 0);
      continue;
    }
    if (in->opcode == FUSE_FORGET || in->opcode == FUSE_BATCH_FORGET || in->opcode == FUSE_INTERRUPT)
      continue;
    if (mode == "chatty" && in->opcode == FUSE_LOOKUP) {
      const std::string_view name(body);
      if (name.starts_with("say-")) {
        const std::string line = "said " + std::string(name.substr(4)) + "\n";
        (void)!::write(2, line.data(), line.size());
      }
      if (name == "flood")
        std::thread([] {
          std::string line(4096, 'y');
          line.back() = '\n';
          for (int i = 0; i < 2048; ++i)
            if (::write(2, line.data(), line.size()) < 0) return;
        }).detach();
      send_reply(in->unique, ENOENT, nullptr, 0);
      continue;
    }
    if (mode == "hang") continue;
    if (mode == "wrong-unique") {
      send_reply(in->unique + 2, ENOENT, nullptr, 0);
      continue;
    }
    if (mode == "probe" && in->opcode == FUSE_LOOKUP) {
      char* end = nullptr;
      std::uint64_t n = std::strtoull(body, &end, 10);
      fuse_entry_out e{};
      if (end == body || *end != '\0' || !probe_attr(n, e.attr)) {
        send_reply(in->unique, ENOENT, nullptr, 0);
        continue;
      }
      e.nodeid = n + 2;
      e.generation = 1;
      send_reply(in->unique, 0, &e, sizeof e);
      continue;
    }
    if (mode == "probe" && in->opcode == FUSE_GETATTR && in->nodeid > 1) {
      fuse_attr_out a{};
      if (!probe_attr(in->nodeid - 2, a.attr)) {
        send_reply(in->unique, ENOENT, nullptr, 0);
        continue;
      }
      send_reply(in->unique, 0, &a, sizeof a);
      continue;
    }
    if (mode == "listing" && list_dir(*in, body, later)) continue;
    if (mode == "late-unlink" && late.handle(*in, body)) continue;
    if (mode == "notify-rename" && in->opcode == FUSE_LOOKUP) {
      if (std::string_view(body) != "a") {
        send_reply(in->unique, ENOENT, nullptr, 0);
        continue;
      }
      fuse_entry_out e{};
      e.nodeid = e.attr.ino = 2;
      e.generation = 1;
      e.attr.mode = S_IFREG | 0644;
      e.attr.nlink = 1;
      send_reply(in->unique, 0, &e, sizeof e);
      continue;
    }
    if (mode == "notify-rename" && (in->opcode == FUSE_RENAME || in->opcode == FUSE_RENAME2)) {
      fuse_notify_inval_entry_out ie{};
      ie.parent = FUSE_ROOT_ID;
      ie.namelen = 1;
      std::vector<char> m(sizeof(fuse_out_header) + sizeof ie + 2);
      fuse_out_header oh{static_cast<std::uint32_t>(m.size()), FUSE_NOTIFY_INVAL_ENTRY, 0};
      std::memcpy(m.data(), &oh, sizeof oh);
      std::memcpy(m.data() + sizeof oh, &ie, sizeof ie);
      std::memcpy(m.data() + sizeof oh + sizeof ie, "a", 2);
      (void)!::write(fd, m.data(), m.size());
      send_reply(in->unique, 0, nullptr, 0);
      continue;
    }
    if (in->opcode == FUSE_GETATTR) {
      if (crash_on_getattr) std::abort();
      if (mode == "bad-size") {
        send_reply(in->unique, 0, "abc", 3);
        continue;
      }
      fuse_attr_out a{};
      a.attr.ino = 1;
      a.attr.mode = S_IFDIR | 0755;
      a.attr.nlink = 2;
      if (mode == "split") {
        std::vector<char> m(sizeof(fuse_out_header) + sizeof a);
        fuse_out_header oh{static_cast<std::uint32_t>(m.size()), 0, in->unique};
        std::memcpy(m.data(), &oh, sizeof oh);
        std::memcpy(m.data() + sizeof oh, &a, sizeof a);
        (void)!::write(fd, m.data(), 40);
        (void)!::write(fd, m.data() + 40, m.size() - 40);
        continue;
      }
      send_reply(in->unique, 0, &a, sizeof a);
      continue;
    }
    send_reply(in->unique, ENOSYS, nullptr, 0);
  }
}
