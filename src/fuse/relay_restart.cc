// The FUSE relay's restart (docs/fuse.md, "Restart"): when the file system fails, ward keeps the
// kernel's connection, backs off between failed attempts, starts the command again, replays the
// kernel's INIT, finds every node the kernel holds again by name, reopens every open handle, and
// re-issues the requests the old instance held where that is safe (poison pills and unsafe ones are
// answered); past the policy it gives up. Also the requests ward itself sends to an instance.
// relay_impl.h has the class's contract.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>

#include "fuse/relay_impl.h"

namespace ward::fuse::detail {
namespace {

// An error reply made a success with no body: what a re-issued request that found its own first
// attempt's work done answers.
std::vector<char> succeeded(std::vector<char> reply) {
  reply.resize(sizeof(fuse_out_header));
  auto oh = load<fuse_out_header>(reply.data());
  oh.error = 0;
  oh.len = sizeof oh;
  store(reply.data(), oh);
  return reply;
}

}  // namespace

// The file system failed. Restarts it when the policy allows (the kernel's connection is kept
// and nothing the applications hold changes), else answers what it held with EIO, unmounts and
// returns the failure. Callers return its result at once: buffers and maps have changed.
Result<void> Relay::fs_failed(Errc kind, std::string detail) {
  // Wait status first: a process that exited says how.
  reap();
  blame(kind);
  if (WIFSIGNALED(status_) && kind == Errc::exited) {
    kind = Errc::crashed;
    // "SIGKILL" rather than strsignal's "Killed": the name a reader can look up and send.
    const char* abbrev = ::sigabbrev_np(WTERMSIG(status_));
    detail += " (killed by " + (abbrev ? "SIG" + std::string(abbrev) : "signal " + std::to_string(WTERMSIG(status_))) + ")";
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
    // ends early if the mount goes away (POLLERR on /dev/fuse) or a stop is requested
    // (SIGINT/SIGTERM): then ward unmounts and ends as the loop would.
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
    pollfd w[2] = {{kfd_, 0, 0}, {o_.stop_fd, POLLIN, 0}};
    if (::poll(w, o_.stop_fd >= 0 ? 2 : 1, static_cast<int>(backoff.count())) > 0 && (w[1].revents & POLLIN)) {
      log("stop requested while restarting: unmounting");
      unmount();
      gone_ = true;
      return {};
    }
  }
}

// The instance that just failed held some requests. Unless it was killed from outside (SIGKILL
// that ward did not send: an operator, the OOM killer, a test), each of them may be what killed
// it; a request that several instances fail holding is a poison pill (see reissue).
void Relay::blame(Errc kind) {
  bool outside = kind == Errc::exited && WIFSIGNALED(status_) && WTERMSIG(status_) == SIGKILL;
  if (outside) return;
  for (auto& [u, r] : inflight_)
    if (r.sent_to == instance_) ++r.attempts;
}

// The kernel's side of the connection is gone (unmounted, or aborted through
// /sys/fs/fuse/connections): /dev/fuse reports POLLERR.
bool Relay::kernel_gone() {
  pollfd p{kfd_, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLERR);
}

bool Relay::may_restart() {
  if (!init_done_ || o_.max_restarts == 0) return false;
  auto now = Clock::now();
  while (!restart_times_.empty() && now - restart_times_.front() > o_.restart_window)
    restart_times_.pop_front();
  return restart_times_.size() < o_.max_restarts;
}

std::unexpected<Error> Relay::give_up(Errc kind, std::string detail) {
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
Result<void> Relay::restart() {
  auto started = Clock::now();
  bool replaying = journaling();
  if (replaying)
    for (const auto& snap : snapshots_) WARD_TRY(snap.restore());
  WARD_TRY(start_fs());
  // INIT, byte for byte what the kernel sent first.
  if (mounts_itself(o_.command)) WARD_TRY(await_handoff());
  auto init = WARD_TRY(call(init_req_, o_.init_timeout));
  WARD_TRY(check_init(init));
  Replayed replayed;
  if (replaying) {
    auto r = WARD_TRY(replay());
    if (r) replayed = std::move(*r);
    // The snapshots put the storage back as it was at the mount, and the journal no longer
    // brings it forward: serving it would silently undo everything written since. Fail-stop.
    else if (!snapshots_.empty())
      return fail(Errc::bad_data, "the journal replay diverged after --snapshot put the storage back as it was at the mount ("
                                  + r.error() + "); serving it would undo everything written since (not restarting)");
    else drop_journal(r.error() + "; nodes are found by name");  // on a partly replayed instance
  }

  std::size_t found = 0, stale = 0, reopened = 0, lost_handles = 0;
  inos_.begin_instance();
  WARD_TRY(learn_root_ino());
  for (std::uint64_t id : nodes_.begin_restart()) {
    Node* n = nodes_.find(id);
    if (auto it = replayed.nodes.find(id); n && it != replayed.nodes.end()) {
      nodes_.rebind(id, it->second, n->fs_refs), ++found;  // the replay counted its lookups again
      if (auto ino = replayed.inos.find(id); ino != replayed.inos.end()) inos_.learn(ino->second, n->ino);
      continue;
    }
    Node* parent = n ? nodes_.find(n->parent) : nullptr;
    if (!n || !parent || parent->stale || parent->fs == 0) {
      nodes_.mark_stale(id), ++stale;
      continue;
    }
    auto e = WARD_TRY(lookup(parent->fs, n->name));
    if (!e) e = WARD_TRY(lookup_hiding(id, parent->fs));  // renamed out of the way meanwhile?
    if (!e || (e->attr.mode & S_IFMT) != n->type) {
      if (stale < 5)  // the names say what was lost; a few are enough for the log
        log("restart: node " + std::to_string(id) + " ('" + n->name + "' in node " + std::to_string(n->parent) +
            (e ? ") is another kind of file now" : ") is gone") + "; requests on it get ESTALE");
      if (e) forget_in_fs(e->nodeid, 1);
      nodes_.mark_stale(id), ++stale;
      continue;
    }
    nodes_.rebind(id, e->nodeid, 1), ++found;
    inos_.learn(e->attr.ino, n->ino);
  }
  for (auto& [id, h] : handles_.all()) {
    if (auto it = replayed.handles.find(id); it != replayed.handles.end()) {
      h.fs = it->second, h.stale = false, ++reopened;  // a RELEASE in flight is re-issued to it
      if (h.dir) WARD_TRY(resume_listing(h));
      continue;
    }
    if (h.releasing) {  // not reopened just to be released: ward answers that RELEASE
      h.stale = true;
      continue;
    }
    Node* n = nodes_.find(h.node);
    std::optional<std::uint64_t> fh;
    if (n && !n->stale && n->fs != 0) fh = WARD_TRY(reopen(n->fs, h.flags, h.dir));
    h.stale = !fh;
    if (fh) h.fs = *fh, ++reopened;  // before resume_listing: it lists through the new handle
    else ++lost_handles;
    if (h.dir && fh) WARD_TRY(resume_listing(h));
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

// The restarted instance must agree to what the kernel was told: same protocol, same feature
// flags, writes at least as large.
Result<void> Relay::check_init(const std::vector<char>& reply) {
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

// ---- requests ward itself sends to the file system (restart, forgets) ----------------------------

std::vector<char> Relay::message(std::uint32_t opcode, std::uint64_t unique, std::uint64_t nodeid,
                                 const void* body, std::size_t n, std::string_view name, std::string_view to) {
  auto named = [](std::string_view s) { return s.data() ? s.size() + 1 : 0; };
  std::vector<char> m(sizeof(fuse_in_header) + n + named(name) + named(to));
  fuse_in_header h{};
  h.len = static_cast<std::uint32_t>(m.size());
  h.opcode = opcode;
  h.unique = unique;
  h.nodeid = nodeid;
  std::memcpy(m.data(), &h, sizeof h);
  char* p = m.data() + sizeof h;
  if (n) std::memcpy(p, body, n);
  p += n;
  if (name.data()) std::memcpy(p, name.data(), name.size());  // the vector's zeros end each name
  if (to.data()) std::memcpy(p + name.size() + 1, to.data(), to.size());
  return m;
}

std::uint64_t Relay::ward_unique() { return kWardUnique + 2 * ++ward_calls_; }

// Sends one request (its unique id in the message) and waits, within `limit`, for the reply
// with that id. Notifications meanwhile are dropped (the kernel's caches are revalidated after
// a restart anyway), and so are answers to INTERRUPTs (an earlier call's may come late); any other
// message, a malformed reply or the instance's death is an error.
Result<std::vector<char>> Relay::call(const std::vector<char>& msg, std::chrono::milliseconds limit,
                                      std::size_t len, bool interrupted) {
  if (len == 0) len = msg.size();
  auto in = load<fuse_in_header>(msg.data());
  if (::send(fs_, msg.data(), len, MSG_NOSIGNAL) != static_cast<ssize_t>(len))
    return fail(Errc::exited, errno_text("the restarted file system did not take a request", errno));
  fuse_interrupt_in ii{};
  ii.unique = in.unique;
  const std::vector<char> interrupt =
      interrupted ? message(FUSE_INTERRUPT, in.unique | kIntReqBit, 0, &ii, sizeof ii) : std::vector<char>{};
  // Lost with a dying instance: the request's own answer never comes then either.
  auto send_interrupt = [&] { (void)!::send(fs_, interrupt.data(), interrupt.size(), MSG_NOSIGNAL | MSG_DONTWAIT); };
  if (interrupted) send_interrupt();
  constexpr int kMaxResent = 8;
  int resent = 0;
  auto deadline = Clock::now() + limit;
  for (;;) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0)
      return fail(Errc::hung, "the restarted file system did not answer " +
                                  std::string(op_info(in.opcode)->name) + " within " +
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
    if (oh.unique & kIntReqBit) {  // an INTERRUPT's answer: this request's, or a late one's
      if (n != sizeof oh) return fail(Errc::violation, "reply to an interrupt with a body");
      // EAGAIN, not yet: sent again, as the kernel would, but a bounded number of times.
      if (interrupted && oh.unique == (in.unique | kIntReqBit) && oh.error == -EAGAIN && ++resent <= kMaxResent)
        send_interrupt();
      continue;
    }
    if (oh.unique != in.unique)
      return fail(Errc::violation, "reply with unique id " + std::to_string(oh.unique) +
                                       " during a restart, not the request in flight");
    std::uint32_t asked = asked_size(in.opcode, msg.data() + sizeof in, len - sizeof in);
    if (auto bad = check_body(*op_info(in.opcode), asked, oh.error, n - sizeof oh); !bad.empty())
      return fail(Errc::violation, std::move(bad));
    return std::vector<char>(buf_.data(), buf_.data() + n);
  }
}

// A request ward has sent before (journal replay, a kept write), again under a fresh unique id.
Result<std::vector<char>> Relay::call_again(std::vector<char> msg) {
  auto h = load<fuse_in_header>(msg.data());
  h.unique = ward_unique();
  store(msg.data(), h);
  return call(msg, o_.request_timeout);
}

// LOOKUP of `name` in the instance's directory `dir`: the entry, nullopt when it is not there.
Result<std::optional<fuse_entry_out>> Relay::lookup(std::uint64_t dir, std::string_view name) {
  auto reply = WARD_TRY(call(message(FUSE_LOOKUP, ward_unique(), dir, nullptr, 0, name), o_.request_timeout));
  auto oh = load<fuse_out_header>(reply.data());
  if (oh.error != 0) return std::optional<fuse_entry_out>{};
  auto e = load<fuse_entry_out>(reply.data() + sizeof oh);
  if (e.nodeid == 0) return std::optional<fuse_entry_out>{};  // a negative entry
  return std::optional{e};
}

// OPEN/OPENDIR of the instance's node with the flags the kernel first sent, minus those that
// would create or truncate again. The instance's file handle, nullopt when it refused.
Result<std::optional<std::uint64_t>> Relay::reopen(std::uint64_t node, std::uint32_t flags, bool dir) {
  fuse_open_in in{};
  in.flags = flags & ~static_cast<std::uint32_t>(O_CREAT | O_EXCL | O_TRUNC);
  auto reply = WARD_TRY(call(message(dir ? FUSE_OPENDIR : FUSE_OPEN, ward_unique(), node, &in, sizeof in),
                             o_.request_timeout));
  auto oh = load<fuse_out_header>(reply.data());
  if (oh.error != 0) return std::optional<std::uint64_t>{};
  return std::optional{load<fuse_open_out>(reply.data() + sizeof oh).fh};
}

// The new instance's inode number for the root, learned (inos.h). A refusal teaches nothing.
Result<void> Relay::learn_root_ino() {
  Node* root = nodes_.find(Nodes::kRoot);
  if (!root || root->ino == 0) return {};
  fuse_getattr_in in{};
  auto reply = WARD_TRY(call(message(FUSE_GETATTR, ward_unique(), Nodes::kRoot, &in, sizeof in), o_.request_timeout));
  auto oh = load<fuse_out_header>(reply.data());
  if (oh.error == 0) inos_.learn(load<fuse_attr_out>(reply.data() + sizeof oh).attr.ino, root->ino);
  return {};
}

void Relay::forget_in_fs(std::uint64_t fs_node, std::uint64_t count) {
  fuse_forget_in f{};
  f.nlookup = count;
  auto m = message(FUSE_FORGET, ward_unique(), fs_node, &f, sizeof f);
  (void)!::send(fs_, m.data(), m.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

// Whether a request may be sent again to a new instance (protocol.cc's rule, narrowed where the
// request's own arguments make it non-idempotent).
Retry Relay::retry_rule(const InFlight& r) {
  Retry rule = r.op->retry;
  const char* body = r.msg.data() + sizeof(fuse_in_header);
  std::size_t len = r.len - sizeof(fuse_in_header);
  if (r.opcode == FUSE_WRITE && r.ids.has_fh) {
    // pwrite on a descriptor opened O_APPEND appends wherever the offset says: twice is twice.
    Handle* h = handles_.find(r.ids.fh);
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
Result<Relay::Reissue> Relay::reissue(std::uint64_t unique, InFlight& r) {
  // A request every instance dies holding is a poison pill: after kMaxAttempts it is answered.
  // (More than one: an instance can also die of something else while it holds an innocent one.)
  Retry rule = r.attempts >= kMaxAttempts ? Retry::never : retry_rule(r);
  if (rule == Retry::release) {
    // The journal replay opened it in the new instance: that instance must hear the release.
    Handle* h = handles_.find(r.ids.fh);
    if (h && !h->stale) rule = Retry::again;
  }
  if (rule == Retry::release) {
    handles_.erase(r.ids.fh);
    answer(unique, 0);
    return Reissue::released;
  }
  if (rule == Retry::never) {
    if (r.own || r.clearing) own_done(r, -EIO);
    if (!r.own) answer(unique, EIO);  // ward's own: nobody to answer
    refused_what_ += std::string(" ") + r.op->name;
    return Reissue::refused;
  }
  if (bool served = WARD_TRY(resumed_listing(unique, r, r.msg.data(), r.len)); served)
    return Reissue::sent;
  r.sent_to = instance_;
  if (int err = translate(r.msg.data(), *r.op, r.ids); err != 0) {
    if (r.own || r.clearing) own_done(r, -err);
    if (!r.own) answer(unique, err);
    refused_what_ += std::string(" ") + r.op->name + "(" + std::strerror(err) + ")";
    return Reissue::refused;
  }
  // More than one round when the request has steps (relay_hidden.cc: an open file's name moved
  // out of the way first; a listing of hidden names only, asked on).
  for (;;) {
    // Its application was interrupted (the INTERRUPT went to the instance that failed): the new
    // instance hears of it too, else the application waits for an answer it gave up on.
    auto reply = WARD_TRY(call(r.msg, o_.request_timeout, r.len, r.interrupted));
    auto oh = load<fuse_out_header>(reply.data());
    rule = retry_rule(r);
    if (rule == Retry::missing_done && (oh.error == -ENOENT || oh.error == -ENODATA)) {
      // Gone already: the first attempt removed it (the kernel had checked it existed).
      reply = succeeded(std::move(reply));
    } else if (rule == Retry::exists_done && oh.error == -EEXIST) {
      reply = WARD_TRY(already_made(r, reply));
    }
    std::size_t n = reply.size();
    auto step = WARD_TRY(hidden_step(r, reply.data(), n));
    if (step == Step::resend) continue;
    if (step == Step::done) return Reissue::sent;
    WARD_TRY(deliver(r, reply.data(), n));
    return Reissue::sent;
  }
}

// A create-like request answered EEXIST when re-issued: the first attempt made it (the kernel
// had seen the name absent, and holds the directory locked while it creates). Answers as the
// first attempt would have: the entry (and for CREATE an open handle) of what is there now, if
// it is of the kind that was asked for; else the EEXIST stands.
Result<std::vector<char>> Relay::already_made(const InFlight& r, std::vector<char> eexist) {
  if (r.op->body != Body::entry && r.op->body != Body::create)  // SETXATTR: done
    return succeeded(std::move(eexist));
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

}  // namespace ward::fuse::detail
