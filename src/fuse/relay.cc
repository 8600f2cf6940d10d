// The FUSE relay: kernel <-> ward <-> file system. The contract is in include/ward/fuse/relay.h;
// the design (why a socket pair works as libfuse3's "/dev/fd/N", what a restart replays and why)
// in docs/fuse.md. This file: run_fuse(), mounting, the loop, requests from the kernel (ids
// translated) and messages from the file system (validated, ids translated back). Restart,
// journal, --rio and directory listings are in the other relay_*.cc (relay_impl.h says which).
// What ward knows per opcode is one table (protocol.cc); the ids the kernel holds across restarts
// are ids.h's.
#include <fcntl.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "fuse/relay_impl.h"
#include "fuse/fusectl.h"
#include "fuse/status.h"
#include "fuse/user_access.h"

namespace ward::fuse {
namespace detail {

NameArgs names_of(const InFlight& r, std::uint32_t minor) { return names_in(r.msg.data(), r.len, *r.op, r.opcode, minor); }

NameArgs names_in(const char* msg, std::size_t msg_len, const OpInfo& op, std::uint32_t opcode, std::uint32_t minor) {
  const char* body = msg + sizeof(fuse_in_header);
  std::size_t len = msg_len - sizeof(fuse_in_header);
  std::size_t at = name_offset(op, opcode, minor);
  auto next = [&](std::size_t& from) -> std::string_view {
    if (from >= len) return {};
    const char* s = body + from;
    const void* nul = std::memchr(s, 0, len - from);
    if (!nul) return {};
    std::size_t n = static_cast<const char*>(nul) - s;
    from += n + 1;
    return {s, n};
  };
  NameArgs out;
  out.name = next(at);
  if (op.names == Names::rename) out.to = next(at);
  return out;
}

Result<Stats> Relay::run() {
  WARD_TRY(open_journal());
  if (o_.rio && o_.journal)
    return fail(Errc::misuse, "--rio and --journal together: the journal already replays every write");
  if (o_.rio) WARD_TRY(open_rio());
  WARD_TRY(check_user_reaches(o_));
  output_ = WARD_TRY(FsOutput::start(o_.fs_output_fd, "ward fuse " + o_.mountpoint + ": fs: "));
  WARD_TRY(mount_it());
  WARD_TRY(start_fs());
  init_deadline_ = Clock::now() + o_.init_timeout;
  WARD_TRY(loop());
  return stats_;
}

void Relay::log(const std::string& line) {
  if (o_.log_fd < 0) return;
  std::string l = "ward fuse " + o_.mountpoint + ": " + line + "\n";
  (void)!::write(o_.log_fd, l.data(), l.size());
}

Result<void> Relay::mount_it() {
  if (::geteuid() != 0)
    return fail(Errc::misuse, "ward fuse mounts with mount(2) and must run as root (euid " +
                                  std::to_string(::geteuid()) + ")");
  struct stat st {};
  if (::stat(o_.mountpoint.c_str(), &st) != 0)
    return fail(Errc::misuse, errno_text("mount point " + o_.mountpoint, errno));
  if (!S_ISDIR(st.st_mode)) return fail(Errc::misuse, "mount point " + o_.mountpoint + " is not a directory");
  kfd_ = ::open("/dev/fuse", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (kfd_ < 0) return fail(Errc::load_failed, errno_text("open /dev/fuse", errno));
  // The mount's owner, the one user who may use it without allow_other: the user the file system
  // runs as, as if that user had mounted it (a file system that is not root cannot serve root's
  // requests faithfully anyway: it cannot give a file root's ownership).
  const auto uid = o_.user ? o_.user->uid : ::getuid();
  const auto gid = o_.user ? o_.user->gid : ::getgid();
  std::string data = "fd=" + std::to_string(kfd_) + ",rootmode=40000,user_id=" + std::to_string(uid) +
                     ",group_id=" + std::to_string(gid);
  if (o_.allow_other) data += ",allow_other";
  if (o_.default_permissions) data += ",default_permissions";
  // Not 14 pages any more (so that a spliced reply fit the 16 buffers splice_to_socket sends as
  // one datagram): the file system's pipes are capped at 16 buffers instead (launch.cc).
  data += ",max_read=" + std::to_string(kMaxRead);
  mount_path_ = absolute_mountpoint(o_.mountpoint);  // before the mount: no request may follow
  if (::mount("ward", o_.mountpoint.c_str(), "fuse.ward", MS_NOSUID | MS_NODEV, data.c_str()) != 0)
    return fail(Errc::load_failed, errno_text("mount " + o_.mountpoint, errno));
  mounted_ = true;
  connection_ = fuse_connection_at(mount_path_);  // mountinfo only: no request to the file system
  // Only a self-mounting FS is shown its mount (own_mount.h), and only it needs the watch.
  // Without the watch the FS is never shown the mount (nothing could take the clone away again).
  if (mounts_itself(o_.command))
    if (auto w = own_watch_.start(mount_path_, "fuse.ward"); !w) log("the file system will not see its own mount: " + w.error().detail);
  return {};
}

Result<void> Relay::start_fs() {
  ++instance_;
  handed_ = false;
  // Its /dev/log in the sandbox; unsandboxed it has the host's.
  UniqueFd log_socket = o_.sandbox ? output_.new_syslog() : UniqueFd{};
  fs_proc_ = WARD_TRY(launch(o_, output_.write_end(), log_socket.get()));
  fs_ = fs_proc_.sock();
  pidfd_ = fs_proc_.pidfd();
  fs_ns_ = pid_namespace_of(static_cast<std::uint32_t>(fs_proc_.pid()));
  return {};
}

// Kills the file system (its whole process group) and records how it ended.
void Relay::reap() {
  answer_own_requests();  // else a thread of the FS waiting on its own mount keeps it alive
  const std::optional<NamespaceId> dying = fs_proc_.running() ? fs_ns_ : std::nullopt;
  fs_proc_.kill_and_reap([&] { serve_dying(dying); }, dying ? kfd_ : -1);
  status_ = fs_proc_.status();
  pidfd_ = -1;
}

void Relay::unmount() {
  if (!mounted_) return;
  if (::umount2(o_.mountpoint.c_str(), 0) != 0) ::umount2(o_.mountpoint.c_str(), MNT_DETACH);
  mounted_ = false;
}

// Whether the datagram in buf_ (n bytes) is the stand-in's hand-off (launch.h), which counts once
// per instance: a second one is a malformed message like any other.
bool Relay::is_handoff(std::size_t n) const {
  if (handed_ || !mounts_itself(o_.command) || n != kHandoffLen) return false;
  auto oh = load<fuse_out_header>(buf_.data());
  return oh.len == kHandoffLen && oh.error == 0 && oh.unique == 0;
}

// The first instance's stand-in handed it the socket: show it its mount, then send the INIT held.
Result<void> Relay::handed_off() {
  handed_ = true;
  show_own_mount();
  if (!init_held_) return {};
  init_held_ = false;
  for (auto& [u, r] : inflight_)
    if (r.opcode == FUSE_INIT) return send_to_fs(r.msg.data(), r.len);
  return {};
}

// A restarted self-mounting instance: its hand-off (ward-fusermount's datagram, or its mount(2)
// answered by relay_mount.cc) comes before anything else it may send, within the INIT deadline;
// anything else first is a violation.
Result<void> Relay::await_handoff() {
  const auto deadline = Clock::now() + o_.init_timeout;
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd p[3] = {{fs_, POLLIN, 0}, {pidfd_, POLLIN, 0}, {fs_proc_.mount_requests(), POLLIN, 0}};
    const int r = left > 0 ? ::poll(p, 3, static_cast<int>(left)) : 0;
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return fail(Errc::hung, "no mount within " + std::to_string(o_.init_timeout.count()) + " ms");
    if (p[2].revents & POLLIN) {  // its mount(2): relay_mount.cc makes the hand-off
      WARD_TRY(mount_asked());
      if (handed_) return {};
      continue;
    }
    if (!(p[0].revents & POLLIN)) return fail(Errc::exited, "the file system exited before it mounted");
    const ssize_t n = ::recv(fs_, buf_.data(), buf_.size(), MSG_TRUNC | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return fail(Errc::exited, "the file system closed ward's socket before it mounted");
    if (!is_handoff(static_cast<std::size_t>(n))) return fail(Errc::violation, "a message before the mount's hand-off");
    handed_ = true;
    show_own_mount();
    return {};
  }
}

// An instance is about to be sent INIT: a self-mounting one sees ward's mount at its mount point
// from then on (a request it sends there waits for its own INIT reply, as on a direct mount).
void Relay::show_own_mount() {
  shown_ = false;  // a new instance has a new namespace, without a clone
  if (own_gone_ || own_watch_.fd() < 0 || pidfd_ < 0) return;
  if (!show_mount_in(pidfd_, mount_path_, kShowWait, o_.log_fd, "ward fuse " + o_.mountpoint + ": "))
    log("showing the file system its own mount takes longer than " + std::to_string(kShowWait.count()) +
        " ms; going on");
  shown_ = true;
}

// The mount table of ward's namespace changed. Once ward's own mount is gone from it (the user
// unmounted, or ward did on a stop), the clone in the file system's namespace goes too, so the
// kernel lets go of the connection as it would have without the clone.
void Relay::own_mount_changed() {
  if (own_gone_ || own_watch_.still_mounted()) return;
  own_gone_ = true;
  if (shown_ && pidfd_ >= 0) hide_mount_in(pidfd_, mount_path_, o_.log_fd, "ward fuse " + o_.mountpoint + ": ");
  shown_ = false;
}

void Relay::cleanup() {
  reap();
  output_.stop();  // after the instance: what it printed last is forwarded
  unmount();
  stop_notifier();
  if (kfd_ >= 0) ::close(kfd_), kfd_ = -1;
  close_rio();
}

void Relay::answer(std::uint64_t unique, int err) {
  fuse_out_header oh{};
  oh.len = sizeof oh;
  oh.error = -err;
  oh.unique = unique;
  // ENOENT: the kernel no longer waits for it (interrupted, or the connection is gone).
  (void)!::write(kfd_, &oh, sizeof oh);
  ++stats_.answered_by_ward;
}

void Relay::event(Event::Kind kind, const std::string& detail) {
  if (o_.on_event) o_.on_event(Event{kind, detail, &stats_});
}

// ---- the loop ---------------------------------------------------------------------------------

Result<void> Relay::loop() {
  bool stopping = false;
  Clock::time_point stop_deadline{};
  for (;;) {
    WARD_TRY(unhide_released());  // files unlinked while open whose last handle went
    auto now = Clock::now();
    Clock::time_point next = Clock::time_point::max();
    if (!init_done_) next = init_deadline_;
    for (auto& [u, r] : inflight_) next = std::min(next, r.deadline);
    if (stopping) next = std::min(next, stop_deadline);
    int timeout = -1;
    if (!deferred_.empty()) next = now;  // requests read while an instance died: at once
    if (next != Clock::time_point::max())
      timeout = static_cast<int>(
          std::max<long>(0, std::chrono::ceil<std::chrono::milliseconds>(next - now).count()));
    // poll skips an entry whose descriptor is negative.
    pollfd p[6] = {{kfd_, POLLIN, 0}, {fs_, POLLIN, 0}, {pidfd_, POLLIN, 0},
                   {stopping ? -1 : o_.stop_fd, POLLIN, 0}, {own_gone_ ? -1 : own_watch_.fd(), POLLPRI, 0},
                   {fs_proc_.mount_requests(), POLLIN, 0}};
    int r = ::poll(p, 6, timeout);
    if (r < 0) {
      if (errno == EINTR) continue;
      return fail(Errc::misuse, errno_text("poll", errno));
    }
    now = Clock::now();
    if (p[4].revents & (POLLPRI | POLLERR)) own_mount_changed();
    if (p[5].revents & POLLIN) {
      const std::uint64_t before = stats_.restarts;
      WARD_TRY(mount_asked());
      if (gone_) break;
      if (before != stats_.restarts) continue;
    }
    if (p[3].revents & POLLIN) {
      log("stop requested: unmounting");
      stopping = true;
      stop_deadline = now + o_.exit_timeout;
      unmount();
    }
    // Replies first: they free requests in flight before deadlines are judged. After a
    // restart every descriptor polled above has changed: poll again. Up to kBatch messages each
    // way per wake-up: what is already queued is taken without another poll (neither read
    // blocks: MSG_DONTWAIT, /dev/fuse opened O_NONBLOCK).
    std::uint64_t epoch = stats_.restarts;
    if (p[1].revents & POLLIN)
      for (int i = 0; i < kBatch && epoch == stats_.restarts && !gone_; ++i)
        if (!WARD_TRY(from_fs())) break;
    if (gone_) break;
    if (epoch != stats_.restarts) continue;
    if ((p[2].revents & POLLIN) || (p[1].revents & POLLHUP)) {
      // Replies it sent before it went are delivered: those requests are done.
      for (int i = 0; i < 4096 && epoch == stats_.restarts && pending_fs(); ++i)
        if (!WARD_TRY(from_fs())) break;  // nothing more was there
      if (gone_) break;
      if (epoch != stats_.restarts) continue;
      if (stopping) break;
      WARD_TRY(fs_failed(Errc::exited, "the file system exited"));
      if (gone_) break;
      continue;
    }
    if ((p[0].revents & (POLLIN | POLLERR)) || !deferred_.empty()) {
      bool gone = false;
      for (int i = 0; i < kBatch && !gone && !gone_ && epoch == stats_.restarts; ++i) {
        std::uint64_t seen = stats_.requests;
        gone = WARD_TRY(from_kernel());
        if (stats_.requests == seen) break;  // nothing was queued (EAGAIN)
      }
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
  WARD_TRY(unhide_all());
  // Its next read ends (libfuse: "short read"; go-fuse likewise) instead of waiting for requests
  // that will never come, so a file system that waits for its loop on SIGTERM ends before
  // --exit-timeout.
  if (fs_ >= 0) ::shutdown(fs_, SHUT_RDWR);
  const std::optional<NamespaceId> ending = fs_proc_.running() ? fs_ns_ : std::nullopt;
  fs_proc_.end(o_.exit_timeout, [&] { serve_dying(ending); }, ending ? kfd_ : -1);
  return {};
}

bool Relay::pending_fs() {
  pollfd p{fs_, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

// ---- kernel -> file system --------------------------------------------------------------------

// The same, to the current instance's ids.
int Relay::translate(char* msg, const OpInfo& op, const WardIds& ids) {
  return translate_with(
      msg, op, ids,
      [&](std::uint64_t ward, std::uint64_t& out) {
        Node* n = nodes_.find(ward);
        if (!n) return EIO;  // the kernel never got this id from ward
        if (n->stale || n->fs == 0) return ESTALE;
        return out = n->fs, 0;
      },
      [&](std::uint64_t ward, std::uint64_t& out) {
        Handle* h = handles_.find(ward);
        if (!h) return EBADF;
        if (h->stale) return EIO;
        return out = h->fs, 0;
      });
}

// Which of the request's fields hold ward ids (bounded by the body the kernel sent).
WardIds Relay::ward_ids(const char* msg, std::size_t len, const OpInfo& op) {
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
void Relay::forward_forgets(const char* msg, std::size_t len, std::uint32_t opcode) {
  std::vector<fuse_forget_one> out;
  auto one = [&](std::uint64_t ward, std::uint64_t n) {
    auto f = nodes_.forget(ward, n);
    if (f.count == 0) return;
    out.push_back({f.fs, f.count});
    journal_forget(ward, f.count);
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
Result<bool> Relay::from_kernel() {
  ssize_t n;
  if (!deferred_.empty()) {  // read while an instance was dying (serve_dying): oldest first
    std::vector<char> m = std::move(deferred_.front());
    deferred_.pop_front();
    std::memcpy(buf_.data(), m.data(), m.size());
    n = static_cast<ssize_t>(m.size());
  } else {
    n = ::read(kfd_, buf_.data(), buf_.size());
  }
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
  const OpInfo* op = op_info(in.opcode);
  if (!op) {
    answer(in.unique, ENOSYS);  // ward cannot check or translate it
    return false;
  }
  switch (in.opcode) {
    case FUSE_FORGET:
    case FUSE_BATCH_FORGET:
      forward_forgets(buf_.data(), n, in.opcode);
      return false;
    case FUSE_INTERRUPT: {
      // Passed on only while its request is in flight: one answered meanwhile (the instance's
      // reply and the kernel's INTERRUPT crossed) is over for the kernel too.
      if (static_cast<std::size_t>(n) < sizeof in + sizeof(fuse_interrupt_in)) return false;
      auto it = inflight_.find(load<fuse_interrupt_in>(buf_.data() + sizeof in).unique);
      if (it == inflight_.end() || it->second.own) return false;
      it->second.interrupted = true;
      WARD_TRY(send_to_fs(buf_.data(), n));
      return false;
    }
    case FUSE_FLUSH:
      // A task of the file system closing a file of ward's mount as it dies (SIGKILL): the
      // kernel waits for this answer before the task, and so the namespace, can end, and the
      // instance it would go to is that dying one. Answered here.
      if (dying_fs_task(in.pid)) {
        answer(in.unique, EIO);
        return false;
      }
      break;
    case FUSE_INIT:
      init_req_.assign(buf_.data(), buf_.data() + n);
      // A self-mounting instance may look at its mount point until fusermount returns (libfuse2
      // stats it): it is sent INIT only after the hand-off, and shown its mount then.
      init_held_ = mounts_itself(o_.command) && own_watch_.fd() >= 0 && !handed_;
      break;
    default:
      break;
  }
  InFlight r;
  r.opcode = in.opcode;
  r.op = op;
  r.ids = ward_ids(buf_.data(), n, *op);
  if (r.opcode == FUSE_RELEASE || r.opcode == FUSE_RELEASEDIR) {
    Handle* h = r.ids.has_fh ? handles_.find(r.ids.fh) : nullptr;
    if (!h || h->stale) {  // nothing to release in this instance
      if (h) handles_.erase(r.ids.fh);
      answer(in.unique, 0);
      return false;
    }
    h->releasing = true;
  }
  if (bool served = WARD_TRY(resumed_listing(in.unique, r, buf_.data(), n)); served) return false;
  if (bool hid = WARD_TRY(hidden_request(in.unique, r, n)); hid) return false;  // relay_hidden.cc
  if (int err = translate(buf_.data(), *op, r.ids); err != 0) {
    if (op->body != Body::none) answer(in.unique, err);
    return false;
  }
  if (op->body == Body::none) {  // NOTIFY_REPLY: nothing comes back
    WARD_TRY(send_to_fs(buf_.data(), n));
    return false;
  }
  r.asked = asked_size(in.opcode, buf_.data() + sizeof in, n - sizeof in);
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
  if (in.opcode == FUSE_INIT && init_held_) return false;  // handed_off() sends it
  WARD_TRY(send_to_fs(it->second.msg.data(), n));
  return false;
}

// Sends one message to the instance. When it is gone (EPIPE) the loop notices how on its next
// turn; a request recorded in flight is then re-issued or answered by the restart.
Result<void> Relay::send_to_fs(const char* msg, std::size_t n) {
  if (::send(fs_, msg, n, MSG_NOSIGNAL) == static_cast<ssize_t>(n)) return {};
  int e = errno;
  if (e == EAGAIN || e == EWOULDBLOCK) return fs_failed(Errc::hung, "the file system stopped reading requests");
  if (e == EPIPE || e == ECONNRESET) return {};
  return fs_failed(Errc::violation, errno_text("send to the file system", e));
}

// The request of `r` with ward's ids back in place of the instance's.
std::vector<char> Relay::with_ward_ids(const InFlight& r) {
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

// ---- file system -> kernel --------------------------------------------------------------------

std::string check_body(const OpInfo& op, std::uint32_t asked, std::int32_t error, std::size_t body) {
  if (error != 0 ? body == 0 : body_size_ok(op.body, asked, body, kMaxWrite)) return "";
  return std::string("reply to ") + op.name + " with a " + std::to_string(body) + "-byte body";
}

// What is wrong with the message of `n` bytes in buf_ as a message at all ("" if nothing).
std::string Relay::check_header(ssize_t n) {
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

// One message from the file system, validated before the kernel sees it. Returns whether there
// was one (false: nothing queued, or the socket closed).
Result<bool> Relay::from_fs() {
  ssize_t n = ::recv(fs_, buf_.data(), buf_.size(), MSG_TRUNC | MSG_DONTWAIT);
  if (n < 0) {
    // ECONNRESET: it closed its end (exited); the pidfd or POLLHUP reports how.
    if (errno == EAGAIN || errno == EINTR || errno == ECONNRESET) return false;
    WARD_TRY(fs_failed(Errc::violation, errno_text("recv from the file system", errno)));
    return false;
  }
  if (n == 0) return false;  // closed: the pidfd reports the exit
  WARD_TRY(fs_message(n));
  return true;
}

// The message of `n` bytes (its first datagram) that from_fs() received into buf_.
Result<void> Relay::fs_message(ssize_t n) {
  if (static_cast<std::size_t>(n) >= sizeof(fuse_out_header) && static_cast<std::size_t>(n) <= buf_.size()) {
    auto oh = load<fuse_out_header>(buf_.data());
    if (oh.len > static_cast<std::size_t>(n) && oh.len <= buf_.size()) {
      n = WARD_TRY(rest_of(n, oh.len));
      if (n < 0) return {};  // the file system was restarted meanwhile
    }
  }
  if (n > 0 && is_handoff(static_cast<std::size_t>(n))) return handed_off();
  if (auto bad = check_header(n); !bad.empty()) return fs_failed(Errc::violation, bad);
  auto oh = load<fuse_out_header>(buf_.data());
  std::size_t body = n - sizeof oh;
  if (oh.unique == 0) return notification(n);
  if (oh.unique & kIntReqBit) {  // the answer to an INTERRUPT: EAGAIN or ENOSYS, no body
    if (body != 0) return fs_failed(Errc::violation, "reply to an interrupt with a body");
    auto it = inflight_.find(oh.unique & ~std::uint64_t{kIntReqBit});
    // Its request was answered meanwhile (libfuse answers EAGAIN to an INTERRUPT that finds its
    // request gone): nothing waits for it.
    if (it == inflight_.end()) return {};
    if (!it->second.interrupted) return fs_failed(Errc::violation, "reply to an interrupt that was never sent");
    return to_kernel(buf_.data(), n);
  }
  auto it = inflight_.find(oh.unique);
  if (it == inflight_.end())
    return fs_failed(Errc::violation,
                     "reply with unique id " + std::to_string(oh.unique) + ", not a request in flight");
  InFlight& req = it->second;
  if (auto bad = check_body(*req.op, req.asked, oh.error, body); !bad.empty())
    return fs_failed(Errc::violation, std::move(bad));
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
  if (bool handled = WARD_TRY(hidden_reply(oh.unique, n)); handled) return {};  // relay_hidden.cc
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
  if (done.msg.size() > kSmall && spare_.size() < spares_wanted()) spare_.push_back(std::move(done.msg));
  return {};
}

// A reply the instance gave (or ward made during a restart) for `r`: its ids become ward's,
// ward's tables learn what it did, and the kernel gets it.
Result<void> Relay::deliver(const InFlight& r, char* msg, std::size_t n) {
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
        reply_inos(r, body, blen);
        break;
    }
    if (r.opcode == FUSE_READDIR || r.opcode == FUSE_READDIRPLUS) record_listing(r, body, blen);
    rio_replied(r);
    auto names = names_of(r, init_out_.minor);
    if (r.op->names == Names::remove) nodes_.unlinked(r.ids.node, names.name);
    if (r.op->names == Names::rename) nodes_.renamed(r.ids.node, names.name, r.ids.node2, names.to);
    journal_reply(r, node, fh);
  }
  ++stats_.replies;
  return to_kernel(msg, n);
}

// An entry the instance returned: ward's node id (and the generation the kernel first saw) in
// place of the instance's. Returns ward's id (0 for a negative entry).
std::uint64_t Relay::entry_reply(const InFlight& r, char* at) {
  auto e = load<fuse_entry_out>(at);
  if (e.nodeid == 0) return 0;  // LOOKUP's negative entry: nothing to count
  std::string_view name = names_of(r, init_out_.minor).name;
  std::uint64_t id = nodes_.entry(e.nodeid, r.ids.node, name, e.generation, e.attr.mode & S_IFMT);
  e.nodeid = id;
  e.generation = nodes_.find(id)->generation;
  e.attr.ino = node_ino(id, e.attr.ino);
  store(at, e);
  return id;
}

// The inode number to show for ward's node `ward`, which the instance calls `fs_ino` (inos.h).
std::uint64_t Relay::node_ino(std::uint64_t ward, std::uint64_t fs_ino) {
  Node* n = nodes_.find(ward);
  return n ? inos_.for_node(n->ino, fs_ino) : inos_.show(fs_ino);
}

// Inode numbers in a successful reply without entries (GETATTR, SETATTR, STATX, READDIR): the
// ones ward shows (inos.h). Entries are done where they become ward's (entry_reply,
// direntplus_reply).
void Relay::reply_inos(const InFlight& r, char* body, std::size_t n) {
  switch (r.op->body) {
    case Body::attr: {
      auto a = load<fuse_attr_out>(body);
      a.attr.ino = node_ino(r.ids.node, a.attr.ino);
      store(body, a);
      break;
    }
    case Body::statx:
      if (n >= kStatxInoAt + 8) store(body + kStatxInoAt, node_ino(r.ids.node, load<std::uint64_t>(body + kStatxInoAt)));
      break;
    default:
      if (r.opcode == FUSE_READDIR) dirent_inos(body, n);
      break;
  }
}

std::uint64_t Relay::open_reply(const InFlight& r, char* at, std::uint64_t node) {
  auto o = load<fuse_open_out>(at);
  const char* body = r.msg.data() + sizeof(fuse_in_header);
  Handle h;
  h.fs = o.fh;
  h.node = node;
  h.flags = load<std::uint32_t>(body);  // fuse_open_in.flags and fuse_create_in.flags lead
  h.dir = r.opcode == FUSE_OPENDIR;
  o.fh = handles_.add(h);
  store(at, o);
  return o.fh;
}

// libfuse splices large replies (splice(pipe -> fd), one call); into a SEQPACKET socket the
// kernel sends that as several datagrams of at most 16 pipe buffers each (splice_to_socket).
// The mount's max_read keeps READ replies within one datagram; this joins the rest. Returns
// the message's length once whole, or -1 when the file system failed and was restarted.
Result<ssize_t> Relay::rest_of(std::size_t have, std::size_t want) {
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

Result<void> Relay::to_kernel(const char* msg, std::size_t n) {
  if (::write(kfd_, msg, n) != static_cast<ssize_t>(n) && errno != ENOENT)
    log(errno_text("the kernel refused a reply", errno));
  return {};
}

std::size_t Relay::spares_wanted() const {
  constexpr std::size_t kKernelDefault = 12;  // FUSE_DEFAULT_MAX_BACKGROUND: max_background 0
  constexpr std::size_t kSynchronous = 4;
  const std::size_t background = init_out_.max_background ? init_out_.max_background : kKernelDefault;
  return std::min(background + kSynchronous, kMaxSpares);
}

void Relay::clamp_init(fuse_init_out& init, std::size_t body) const {
  // ward's buffers bound the largest write the kernel may send.
  if (body >= offsetof(fuse_init_out, max_write) + sizeof init.max_write && init.max_write > kMaxWrite)
    init.max_write = kMaxWrite;
}

}  // namespace detail

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
  detail::Relay relay(options);
  return relay.run();
}

}  // namespace ward::fuse
