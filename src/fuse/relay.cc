// The FUSE relay: kernel <-> ward <-> file system. The contract is in include/ward/fuse/relay.h,
// the design (why a socket pair works as libfuse3's "/dev/fd/N") in docs/fuse.md.
#include "ward/fuse/relay.h"

#include "fuse/launch.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <unordered_map>

namespace ward::fuse {
namespace {

using Clock = std::chrono::steady_clock;

// The largest write the kernel may send: FUSE_MAX_MAX_PAGES (256) pages, which ward enforces by
// clamping max_write in the INIT reply, plus headers. The buffer holds one message either way.
constexpr std::size_t kMaxWrite = 1u << 20;
constexpr std::size_t kBufSize = kMaxWrite + 64 * 1024;
// The kernel marks an INTERRUPT's unique id (and the answer to it) with bit 0 (fs/fuse/fuse_i.h:
// kIntReqBit); ordinary ids are even. Not in every <linux/fuse.h>.
constexpr std::uint64_t kIntReqBit = 1;
constexpr std::size_t kMaxRead = 14 * 4096;

std::string errno_text(std::string_view what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

struct InFlight {
  std::uint32_t opcode = 0;
  std::uint32_t size = 0;  // READ/READDIR/GETXATTR/...: the size the kernel asked for
  Clock::time_point deadline;
};

// Requests the file system never answers (the protocol says so).
bool no_reply(std::uint32_t opcode) {
  return opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET || opcode == FUSE_INTERRUPT ||
         opcode == FUSE_NOTIFY_REPLY;
}

// The size the kernel asked for, for replies whose body is bounded by it.
std::uint32_t asked_size(const fuse_in_header& in, const char* body, std::size_t body_len) {
  switch (in.opcode) {
    case FUSE_READ:
    case FUSE_READDIR:
    case FUSE_READDIRPLUS:
      return body_len >= sizeof(fuse_read_in) ? reinterpret_cast<const fuse_read_in*>(body)->size : 0;
    case FUSE_GETXATTR:
    case FUSE_LISTXATTR:
      return body_len >= sizeof(fuse_getxattr_in)
                 ? reinterpret_cast<const fuse_getxattr_in*>(body)->size
                 : 0;
    default:
      return 0;
  }
}

// Whether a successful reply's body length is one the opcode allows. Exact sizes where the kernel
// expects a fixed structure (it would reject others too, but then the request that the file system
// answered wrongly would be lost without a word; ward names the culprit instead).
bool body_size_ok(const InFlight& r, std::size_t n) {
  switch (r.opcode) {
    case FUSE_LOOKUP:
    case FUSE_MKNOD:
    case FUSE_MKDIR:
    case FUSE_SYMLINK:
    case FUSE_LINK:
      return n == sizeof(fuse_entry_out);
    case FUSE_GETATTR:
    case FUSE_SETATTR:
      return n == sizeof(fuse_attr_out);
    case FUSE_OPEN:
    case FUSE_OPENDIR:
      return n == sizeof(fuse_open_out);
    case FUSE_CREATE:
      return n == sizeof(fuse_entry_out) + sizeof(fuse_open_out);
    case FUSE_WRITE:
    case FUSE_COPY_FILE_RANGE:
      return n == sizeof(fuse_write_out);
    case FUSE_STATFS:
      return n == sizeof(fuse_statfs_out);
    case FUSE_INIT:  // older minors send a prefix of fuse_init_out (FUSE_COMPAT_INIT_OUT_SIZE)
      return n >= 8 && n <= sizeof(fuse_init_out);
    case FUSE_READ:
    case FUSE_READDIR:
    case FUSE_READDIRPLUS:
      return n <= r.size;
    case FUSE_READLINK:
      return n <= 4096;
    case FUSE_GETXATTR:
    case FUSE_LISTXATTR:
      return r.size == 0 ? n == sizeof(fuse_getxattr_out) : n <= r.size;
    case FUSE_GETLK:
      return n == sizeof(fuse_lk_out);
    case FUSE_BMAP:
      return n == sizeof(fuse_bmap_out);
    case FUSE_LSEEK:
      return n == sizeof(fuse_lseek_out);
    case FUSE_POLL:
      return n == sizeof(fuse_poll_out);
    case FUSE_RELEASE:
    case FUSE_RELEASEDIR:
    case FUSE_FLUSH:
    case FUSE_FSYNC:
    case FUSE_FSYNCDIR:
    case FUSE_UNLINK:
    case FUSE_RMDIR:
    case FUSE_RENAME:
    case FUSE_RENAME2:
    case FUSE_SETXATTR:
    case FUSE_REMOVEXATTR:
    case FUSE_ACCESS:
    case FUSE_FALLOCATE:
    case FUSE_SETLK:
    case FUSE_SETLKW:
    case FUSE_DESTROY:
      return n == 0;
    default:  // IOCTL and opcodes newer than this table: bounded by the buffer only
      return n <= kMaxWrite;
  }
}

class Relay {
 public:
  explicit Relay(const Options& o) : o_(o), buf_(kBufSize) {}
  ~Relay() { cleanup(); }

  Result<Stats> run() {
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

  // The file system failed: every request in flight gets EIO, the FS is killed, the mount goes.
  std::unexpected<Error> fs_failed(Errc kind, std::string detail) {
    for (auto& [unique, r] : inflight_) answer(unique, EIO);
    inflight_.clear();
    reap();
    if (WIFSIGNALED(status_) && kind == Errc::exited) {
      kind = Errc::crashed;
      detail += " (killed by " + std::string(::strsignal(WTERMSIG(status_))) + ")";
    } else if (WIFEXITED(status_) && kind == Errc::exited) {
      detail += " (exit status " + std::to_string(WEXITSTATUS(status_)) + ")";
    }
    log("file system failed: " + detail);
    unmount();
    auto e = fail(kind, std::move(detail));
    e.error().plugin = o_.command.empty() ? "" : o_.command[0];
    return e;
  }

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
      // Replies first: they free requests in flight before deadlines are judged.
      if (p[1].revents & POLLIN) WARD_TRY(from_fs());
      if (p[0].revents & (POLLIN | POLLERR)) {
        bool gone = WARD_TRY(from_kernel());
        if (gone) break;
      }
      if ((p[2].revents & POLLIN) || (p[1].revents & POLLHUP)) {
        // Replies still queued in the socket are delivered before the exit is judged.
        for (int i = 0; i < 4096 && pending_fs(); ++i) WARD_TRY(from_fs());
        if (stopping) break;
        return fs_failed(Errc::exited, "the file system exited");
      }
      if (!init_done_ && now >= init_deadline_)
        return fs_failed(Errc::hung, "no answer to INIT within " +
                                          std::to_string(o_.init_timeout.count()) + " ms");
      for (auto& [u, req] : inflight_)
        if (req.opcode != FUSE_INIT && now >= req.deadline)
          return fs_failed(Errc::hung, "no answer to opcode " + std::to_string(req.opcode) +
                                           " within " + std::to_string(o_.request_timeout.count()) +
                                           " ms");
      if (stopping && now >= stop_deadline) {
        log("the kernel still holds the (detached) mount after the exit timeout; leaving");
        break;
      }
    }
    log("unmounted: " + std::to_string(stats_.requests) + " requests, " +
        std::to_string(stats_.replies) + " replies, " + std::to_string(stats_.joined) +
        " datagrams joined");
    fs_proc_.end(o_.exit_timeout);
    return {};
  }

  bool pending_fs() {
    pollfd p{fs_, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
  }

  // One request from the kernel. Returns true when the mount is gone.
  Result<bool> from_kernel() {
    ssize_t n = ::read(kfd_, buf_.data(), buf_.size());
    if (n < 0) {
      if (errno == ENODEV) return true;  // unmounted, or aborted through /sys/fs/fuse/connections
      if (errno == EINTR || errno == EAGAIN || errno == ENOENT) return false;
      return fail(Errc::misuse, errno_text("read /dev/fuse", errno));
    }
    auto* in = reinterpret_cast<fuse_in_header*>(buf_.data());
    if (static_cast<std::size_t>(n) < sizeof *in || in->len != static_cast<std::size_t>(n))
      return fail(Errc::violation, "short read from /dev/fuse");
    ++stats_.requests;
    if (!no_reply(in->opcode)) {
      InFlight r;
      r.opcode = in->opcode;
      r.size = asked_size(*in, buf_.data() + sizeof *in, n - sizeof *in);
      r.deadline = Clock::now() + (in->opcode == FUSE_INIT ? o_.init_timeout : o_.request_timeout);
      inflight_[in->unique] = r;
    }
    if (::send(fs_, buf_.data(), n, MSG_NOSIGNAL) != n) {
      int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK)
        return fs_failed(Errc::hung, "the file system stopped reading requests");
      // EPIPE/ECONNRESET: it exited; the pidfd says how, on the next turn of the loop.
      if (e == EPIPE || e == ECONNRESET) return false;
      return fs_failed(Errc::violation, errno_text("send to the file system", e));
    }
    return false;
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
    if (static_cast<std::size_t>(n) > buf_.size())
      return fs_failed(Errc::violation, "oversized message (" + std::to_string(n) + " bytes)");
    if (static_cast<std::size_t>(n) < sizeof(fuse_out_header))
      return fs_failed(Errc::violation, "truncated message (" + std::to_string(n) + " bytes)");
    auto* oh = reinterpret_cast<fuse_out_header*>(buf_.data());
    if (oh->len > static_cast<std::size_t>(n) && oh->len <= buf_.size()) n = WARD_TRY(rest_of(n, oh->len));
    if (oh->len != static_cast<std::size_t>(n))
      return fs_failed(Errc::violation, "header length " + std::to_string(oh->len) + " but " +
                                            std::to_string(n) + " bytes arrived");
    std::size_t body = n - sizeof *oh;
    if (oh->unique == 0) {  // a notification; the kernel checks its body per code
      if (oh->error <= 0 || oh->error >= FUSE_NOTIFY_CODE_MAX)
        return fs_failed(Errc::violation, "notification with code " + std::to_string(oh->error));
      return to_kernel(n);
    }
    if (oh->error > 0 || oh->error <= -512)
      return fs_failed(Errc::violation, "reply with error " + std::to_string(oh->error));
    if (oh->unique & kIntReqBit) {  // the answer to an INTERRUPT: EAGAIN or ENOSYS, no body
      if (!inflight_.contains(oh->unique & ~std::uint64_t{kIntReqBit}) || body != 0)
        return fs_failed(Errc::violation, "reply to an interrupt that was never sent");
      return to_kernel(n);
    }
    auto it = inflight_.find(oh->unique);
    if (it == inflight_.end())
      return fs_failed(Errc::violation,
                       "reply with unique id " + std::to_string(oh->unique) + ", not a request in flight");
    InFlight req = it->second;
    if (oh->error != 0 ? body != 0 : !body_size_ok(req, body))
      return fs_failed(Errc::violation, "reply to opcode " + std::to_string(req.opcode) + " with a " +
                                            std::to_string(body) + "-byte body");
    inflight_.erase(it);
    if (req.opcode == FUSE_INIT) {
      if (oh->error != 0) return fs_failed(Errc::bad_data, "the file system refused INIT");
      init_done_ = true;
      auto* init = reinterpret_cast<fuse_init_out*>(buf_.data() + sizeof *oh);
      // ward's buffers bound the largest write the kernel may send.
      if (body >= offsetof(fuse_init_out, max_write) + sizeof init->max_write &&
          init->max_write > kMaxWrite)
        init->max_write = kMaxWrite;
    }
    ++stats_.replies;
    return to_kernel(n);
  }

  // libfuse splices large replies (splice(pipe -> fd), one call); into a SEQPACKET socket the
  // kernel sends that as several datagrams of at most 16 pipe buffers each (splice_to_socket).
  // The mount's max_read keeps READ replies within one datagram; this joins the rest. Returns
  // the message's length once whole. (docs/fuse.md: why a multithreaded FS makes this a risk.)
  Result<ssize_t> rest_of(std::size_t have, std::size_t want) {
    auto deadline = Clock::now() + o_.request_timeout;
    while (have < want) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      pollfd p{fs_, POLLIN, 0};
      int r = left > 0 ? ::poll(&p, 1, static_cast<int>(left)) : 0;
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0 || !(p.revents & POLLIN))
        return fs_failed(Errc::violation, "header length " + std::to_string(want) + " but " +
                                              std::to_string(have) + " bytes arrived");
      ssize_t n = ::recv(fs_, buf_.data() + have, buf_.size() - have, MSG_TRUNC | MSG_DONTWAIT);
      if (n <= 0 || have + n > want)
        return fs_failed(Errc::violation, "header length " + std::to_string(want) + " but " +
                                              std::to_string(have + std::max<ssize_t>(n, 0)) +
                                              " bytes arrived");
      have += n;
      ++stats_.joined;
    }
    return static_cast<ssize_t>(have);
  }

  Result<void> to_kernel(ssize_t n) {
    if (::write(kfd_, buf_.data(), n) != n && errno != ENOENT)
      log(errno_text("the kernel refused a reply", errno));
    return {};
  }

  const Options& o_;
  std::vector<char> buf_;
  int kfd_ = -1;
  detail::FsProcess fs_proc_;
  int fs_ = -1, pidfd_ = -1;  // fs_proc_'s socket and pidfd (owned there)
  int status_ = 0;
  bool mounted_ = false, init_done_ = false;
  Clock::time_point init_deadline_;
  std::unordered_map<std::uint64_t, InFlight> inflight_;
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
