// The FUSE relay's files unlinked while open (docs/fuse.md, "Unlinked while open"). A restart finds
// the kernel's nodes again by name, and a file unlinked while an application still has it open has
// none: its requests would get ESTALE after a restart. So when the kernel removes the last name of
// a file ward knows to be open (UNLINK, or a RENAME over it), ward sends the file system a RENAME
// to a hidden name in the same directory instead, answers the kernel as the removal would have
// been answered, and removes the hidden name when the last handle is released (or when ward ends).
// The kernel never learns a hidden name: listings drop them, LOOKUP of one is ENOENT, creating one
// is refused, and attributes of a hidden file count one link less. relay_impl.h has the class's
// contract.
#include <poll.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <random>

#include "fuse/relay_impl.h"

namespace ward::fuse::detail {
namespace {

constexpr std::string_view kHiddenPrefix = ".ward-hidden-";

// What a request naming a hidden name is answered, by the kind of names it carries: those that
// would find or remove one say it is not there (the kernel must never learn it), those that would
// make one are refused. `to` is RENAME's target.
struct Refusal {
  Names names;
  int name, to;
};
constexpr Refusal kRefusals[] = {
    {Names::lookup, ENOENT, 0},
    {Names::remove, ENOENT, 0},
    {Names::create, EPERM, 0},
    {Names::symlink, EPERM, 0},
    {Names::rename, ENOENT, EPERM},
};


// splitmix64: the next random part of a hidden name from the last (seeded from random_device once).
std::uint64_t next_nonce(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

// .ward-hidden-<decimal node id>-<16 hex digits>, exactly: a user's own ".ward-hidden-notes" stays
// visible.
bool hidden_name(std::string_view name) {
  if (!name.starts_with(kHiddenPrefix)) return false;
  name.remove_prefix(kHiddenPrefix.size());
  auto dash = name.find('-');
  if (dash == 0 || dash == std::string_view::npos || name.size() - dash - 1 != 16) return false;
  auto all = [](std::string_view s, auto pred) { return std::all_of(s.begin(), s.end(), pred); };
  return all(name.substr(0, dash), [](char c) { return c >= '0' && c <= '9'; }) &&
         all(name.substr(dash + 1), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// A request from the kernel, before it is translated: one that names a hidden name is answered
// here; an UNLINK (or a RENAME over) the last name of an open file becomes a RENAME of that name to
// a hidden one, with the kernel's request kept to follow it. Returns true when it was dealt with.
Result<bool> Relay::hidden_request(std::uint64_t unique, InFlight& r, std::size_t n) {
  if (r.op->names == Names::none) return false;
  auto names = names_in(buf_.data(), n, *r.op, r.opcode, init_out_.minor);
  for (const Refusal& f : kRefusals) {
    if (f.names != r.op->names) continue;
    int err = hidden_name(names.name) ? f.name : hidden_name(names.to) ? f.to : 0;
    if (err == 0) break;
    answer(unique, err);
    return true;
  }
  // RENAME2 comes only with flags (NOREPLACE, EXCHANGE, WHITEOUT): none of those removes an open
  // file's last name in a way ward should change.
  bool rename = r.opcode == FUSE_RENAME && r.ids.has_node2;
  if (!o_.hide_unlinked || (r.opcode != FUSE_UNLINK && !rename)) return false;
  std::uint64_t dir = rename ? r.ids.node2 : r.ids.node;
  std::string_view victim = rename ? names.to : names.name;
  std::uint64_t id = victim.empty() ? 0 : nodes_.named(dir, victim);
  Node* node = id ? nodes_.find(id) : nullptr;
  if (!node || node->stale || node->type == S_IFDIR || handles_.open_on(id) == 0) return false;
  if (rename && nodes_.named(r.ids.node, names.name) == id) return false;  // two names of one file
  if (node->nlink > 1) {
    // It keeps another name to be found by. Counted down now (the kernel refetches attributes
    // after a removal anyway): a count too low only hides a file that did not need it.
    --node->nlink;
    return false;
  }
  if (hide_nonce_ == 0) hide_nonce_ = (std::uint64_t{std::random_device{}()} << 32) | std::random_device{}();
  hide_nonce_ = next_nonce(hide_nonce_);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hide_nonce_));
  std::string hidden = std::string(kHiddenPrefix) + std::to_string(id) + "-" + hex;

  fuse_rename_in ri{};
  ri.newdir = dir;
  InFlight h = step_request(FUSE_RENAME, message(FUSE_RENAME, unique, dir, &ri, sizeof ri, victim, hidden));
  h.hidden = id;
  h.then.assign(buf_.data(), buf_.data() + n);  // still in ward's ids
  return send_new(unique, std::move(h));
}

// A request ward sends in the kernel's place (`msg`: ward's ids), its ids read from it.
InFlight Relay::step_request(std::uint32_t opcode, std::vector<char> msg) {
  InFlight r;
  r.opcode = opcode;
  r.op = op_info(opcode);
  r.len = static_cast<std::uint32_t>(msg.size());
  r.msg = std::move(msg);
  r.ids = ward_ids(r.msg.data(), r.len, *r.op);
  return r;
}

// The kernel's request `then` (unique id `unique`, ward's ids) that would remove or rename over the
// directory `dir` was answered ENOTEMPTY. If a hidden name is left in it, the UNLINK of that name
// to send first, with `then` (moved into it) to follow; else nothing, and `then` is left as it was.
// The kernel reports a close(2) after the fact (RELEASE, in the background), so a file closed,
// unlinked and its directory removed at once is often hidden though no longer open. And POSIX lets
// a directory go while a file that was in it is still open, so its hidden name goes: such a file,
// if it is really still open, gets ESTALE after a restart.
// A hidden name whose own UNLINK is already in flight (unhide_released) is removed again here,
// once: a file system that answers out of order (several threads) may have answered the removal
// of the directory before that UNLINK, and the kernel's request must wait for the name to be gone.
// Whichever of the two UNLINKs comes second gets ENOENT, which counts as done; only the own one
// lets go of the directory and ends the entry.
std::optional<InFlight> Relay::clear_next(std::uint64_t unique, std::uint64_t dir, std::vector<char>& then) {
  auto it = std::find_if(hidden_.begin(), hidden_.end(),
                         [&](const auto& kv) { return kv.second.dir == dir && !kv.second.cleared; });
  if (it == hidden_.end()) return std::nullopt;
  const bool removing = it->second.removing;
  std::string name = it->second.name;
  if (removing) it->second.cleared = true;
  else hidden_.erase(it);
  InFlight r = step_request(FUSE_UNLINK, message(FUSE_UNLINK, unique, dir, nullptr, 0, name));
  r.clearing = dir;
  r.holds_dir = !removing;
  r.then = std::move(then);
  return r;
}

// Sends `r` (ward's ids) to the instance as a new request in flight under `unique`. Always true
// (dealt with): an id that cannot be translated is answered (a kernel's request) or logged (ward's).
Result<bool> Relay::send_new(std::uint64_t unique, InFlight r) {
  if (int err = translate(r.msg.data(), *r.op, r.ids); err != 0) {
    if (r.own) own_done(r, -err);
    else answer(unique, err);
    return true;
  }
  r.deadline = Clock::now() + o_.request_timeout;
  r.sent_to = instance_;
  auto [it, fresh] = inflight_.insert_or_assign(unique, std::move(r));
  (void)fresh;
  WARD_TRY(send_to_fs(it->second.msg.data(), it->second.len));
  return true;
}

// A reply from the instance, before deliver(): hidden_step's, for the request in flight under
// `unique`. Returns true when it was dealt with here (the request was sent on, or finished).
Result<bool> Relay::hidden_reply(std::uint64_t unique, ssize_t& n) {
  auto it = inflight_.find(unique);
  if (it == inflight_.end()) return false;
  std::size_t len = static_cast<std::size_t>(n);
  Step s = WARD_TRY(hidden_step(it->second, buf_.data(), len));
  n = static_cast<ssize_t>(len);
  if (s == Step::deliver) return false;
  if (s == Step::done) {
    inflight_.erase(it);
    return true;
  }
  InFlight& r = it->second;
  r.deadline = Clock::now() + o_.request_timeout;
  r.sent_to = instance_;
  WARD_TRY(send_to_fs(r.msg.data(), r.len));
  return true;
}

// What a reply of `n` bytes in `msg` to `r` means here, from the instance or (restart) re-issued:
//   deliver  on to deliver(), perhaps changed: hidden names dropped from a listing (n shrinks),
//            a hidden file's attributes one link less;
//   resend   `r` was changed into its next step (translated): send it, same unique id;
//   done     finished (ward's own request, or the kernel was answered).
Result<Relay::Step> Relay::hidden_step(InFlight& r, char* msg, std::size_t& n) {
  auto oh = load<fuse_out_header>(msg);
  if (r.own) {
    own_done(r, oh.error);
    return Step::done;
  }
  if (r.clearing != 0) {  // a hidden name removed from a directory about to go
    own_done(r, oh.error);
    if (auto next = clear_next(oh.unique, r.clearing, r.then)) return start_step(r, std::move(*next));
    return switch_to_then(r);
  }
  if (!r.then.empty()) {  // the RENAME that hides an open file, answered
    auto names = names_of(r, init_out_.minor);
    std::uint32_t next = load<fuse_in_header>(r.then.data()).opcode;
    if (oh.error == 0) {
      hidden_[r.hidden] = Hidden{r.ids.node, std::string(names.to)};
      // The directory stays known until the hidden name is removed from it, even if the kernel
      // forgets it first (it may, once the file is closed and before the release is answered).
      if (Node* d = nodes_.find(r.ids.node)) ++d->kernel_refs;
      if (next == FUSE_UNLINK) {
        // Its empty success is what the kernel's UNLINK expects; deliver() records the rename.
        r.then.clear();
        return Step::deliver;
      }
      nodes_.renamed(r.ids.node, names.name, r.ids.node, names.to);
      journal_reply(r, 0, 0);
    } else if (!hide_refused_logged_) {
      hide_refused_logged_ = true;
      log(std::string("the file system refused to rename an open file's name out of the way (") +
          std::strerror(-oh.error) + "): removed as asked; after a restart its handles get ESTALE");
    }
    return switch_to_then(r);
  }
  if (oh.error == -ENOTEMPTY && !hidden_.empty()) {
    if (std::uint64_t dir = removed_dir(r); dir != 0) {
      std::vector<char> then = with_ward_ids(r);
      if (auto step = clear_next(oh.unique, dir, then)) return start_step(r, std::move(*step));
    }
  }
  if (oh.error != 0) return Step::deliver;
  char* body = msg + sizeof oh;
  std::size_t blen = n - sizeof oh;
  switch (r.op->body) {
    case Body::attr: {
      auto a = load<fuse_attr_out>(body);
      seen_attr(r.ids.node, a.attr);
      store(body, a);
      break;
    }
    case Body::entry:
    case Body::create: {
      auto e = load<fuse_entry_out>(body);
      if (std::uint64_t id = nodes_.to_ward(e.nodeid); id != 0 && e.nodeid != 0) {
        seen_attr(id, e.attr);
        store(body, e);
      }
      break;
    }
    case Body::statx:
      if (blen >= kStatxNlinkAt + 4) {
        fuse_attr a{};
        a.nlink = load<std::uint32_t>(body + kStatxNlinkAt);
        seen_attr(r.ids.node, a);
        store(body + kStatxNlinkAt, a.nlink);
      }
      break;
    default:
      break;
  }
  if ((r.opcode == FUSE_READDIR || r.opcode == FUSE_READDIRPLUS) && blen > 0) {
    std::uint64_t last = 0;
    std::size_t kept = drop_hidden(r.opcode == FUSE_READDIRPLUS, body, blen, last);
    if (kept == 0) {
      // Nothing but hidden names: an empty reply would end the listing. Ask on from the last
      // entry, unless that is where this asked from (a file system that does not move on).
      auto in = load<fuse_read_in>(r.msg.data() + sizeof(fuse_in_header));
      if (in.offset != last) {
        in.offset = last;
        store(r.msg.data() + sizeof(fuse_in_header), in);
        return Step::resend;
      }
    }
    n = sizeof oh + kept;
    oh.len = static_cast<std::uint32_t>(n);
    store(msg, oh);
  }
  return Step::deliver;
}

// The directory an RMDIR, or a RENAME over a name, of the kernel's would remove: its ward id, or 0.
std::uint64_t Relay::removed_dir(const InFlight& r) {
  bool rename = r.opcode == FUSE_RENAME && r.ids.has_node2;
  if (r.opcode != FUSE_RMDIR && !rename) return 0;
  auto names = names_of(r, init_out_.minor);
  std::string_view name = rename ? names.to : names.name;
  std::uint64_t id = name.empty() ? 0 : nodes_.named(rename ? r.ids.node2 : r.ids.node, name);
  Node* node = id ? nodes_.find(id) : nullptr;
  return node && node->type == S_IFDIR ? id : 0;
}

// `r` becomes `step` (ward's ids), translated for the instance and sent under r's unique id.
Relay::Step Relay::start_step(InFlight& r, InFlight step) {
  r = std::move(step);
  if (int err = translate(r.msg.data(), *r.op, r.ids); err != 0) {
    own_done(r, -err);
    return switch_to_then(r);
  }
  return Step::resend;
}

// The hiding RENAME is done (or refused): `r` becomes the kernel's own request it was kept with.
Relay::Step Relay::switch_to_then(InFlight& r) {
  std::vector<char> m = std::move(r.then);
  r.then.clear();
  auto h = load<fuse_in_header>(m.data());
  r.opcode = h.opcode;
  r.op = op_info(h.opcode);
  r.len = static_cast<std::uint32_t>(m.size());
  r.ids = ward_ids(m.data(), m.size(), *r.op);
  r.msg = std::move(m);
  r.hidden = 0;
  r.clearing = 0;
  if (int err = translate(r.msg.data(), *r.op, r.ids); err != 0) {
    answer(h.unique, err);
    return Step::done;
  }
  return Step::resend;
}

// Attributes of ward's node `ward` the kernel is about to get: their link count is remembered (a
// file with another name needs no hiding), and a hidden file's counts one name less, the one only
// ward knows (what the kernel expects of an unlinked file: 0, unless it has other names).
void Relay::seen_attr(std::uint64_t ward, fuse_attr& a) {
  Node* node = nodes_.find(ward);
  if (!node) return;
  node->nlink = a.nlink;
  if (a.nlink > 0 && hidden_.contains(ward)) --a.nlink;
}

// Ward's UNLINK of a hidden name was answered (error: the reply's, -errno): its own, or one
// clearing a directory.
void Relay::own_done(const InFlight& r, std::int32_t error) {
  auto names = names_of(r, init_out_.minor);
  if (error == 0 || error == -ENOENT) {
    nodes_.unlinked(r.ids.node, names.name);
    if (error == 0) journal_reply(r, 0, 0);
  } else {
    log("could not remove the hidden file '" + std::string(names.name) + "' (directory node " +
        std::to_string(r.ids.node) + "): " + std::strerror(-error) + "; it is left there");
  }
  // ward's own UNLINK (answered, or refused before it was sent) ends the entry it was removing.
  if (auto it = hidden_.find(r.hidden); r.own && it != hidden_.end() && it->second.removing) hidden_.erase(it);
  // The hold hidden_step took on the directory.
  if (!r.holds_dir) return;
  auto f = nodes_.forget(r.ids.node, 1);
  if (f.count == 0) return;
  forget_in_fs(f.fs, f.count);
  journal_forget(r.ids.node, f.count);
}

// Ward's own UNLINK of the hidden name `h` of node `id` (no kernel request waits for it), as
// unique id `u`.
InFlight Relay::own_unlink(std::uint64_t u, std::uint64_t id, const Hidden& h) {
  InFlight r = step_request(FUSE_UNLINK, message(FUSE_UNLINK, u, h.dir, nullptr, 0, h.name));
  r.own = true;
  r.hidden = id;
  return r;
}

// The loop's turn: every hidden file whose last handle went is removed (ward's own UNLINK, in
// flight like any request: a restart re-issues it, ENOENT meaning done).
Result<void> Relay::unhide_released() {
  auto& emptied = handles_.emptied();
  if (hidden_.empty()) {
    emptied.clear();
    return {};
  }
  std::uint64_t epoch = stats_.restarts;
  while (!emptied.empty() && epoch == stats_.restarts && !gone_) {
    std::uint64_t id = emptied.back();
    emptied.pop_back();
    auto it = hidden_.find(id);
    if (it == hidden_.end() || it->second.removing || handles_.open_on(id) > 0) continue;
    it->second.removing = true;  // until its answer (clear_next)
    std::uint64_t u = ward_unique();
    (void)WARD_TRY(send_new(u, own_unlink(u, id, it->second)));  // always true
  }
  return {};
}

// ward ends (unmounted, stopped): every hidden name still there is removed, the kernel is gone
// and nothing can use them any more. Bounded by --exit-timeout; what is left is logged.
Result<void> Relay::unhide_all() {
  if (hidden_.empty()) return {};
  if (gone_) {  // the file system failed as the mount went: nobody to send the removals to
    log(std::to_string(hidden_.size()) + " hidden file(s) of files unlinked while open are left "
        "(.ward-hidden-* in their directories): the file system was gone when ward ended");
    return {};
  }
  // By id: a removal refused before it is sent ends its entry at once (own_done).
  std::vector<std::uint64_t> ids;
  for (auto& [id, h] : hidden_)
    if (!h.removing) ids.push_back(id);  // else its UNLINK is in flight already
  for (std::uint64_t id : ids) {
    auto it = hidden_.find(id);
    it->second.removing = true;
    std::uint64_t u = ward_unique();
    (void)WARD_TRY(send_new(u, own_unlink(u, id, it->second)));  // always true
  }
  auto own_left = [&] {
    return std::count_if(inflight_.begin(), inflight_.end(), [](const auto& kv) { return kv.second.own; });
  };
  auto deadline = Clock::now() + o_.exit_timeout;
  while (!gone_ && own_left() > 0 && Clock::now() < deadline) {
    pollfd p[2] = {{fs_, POLLIN, 0}, {pidfd_, POLLIN, 0}};
    if (::poll(p, 2, 100) < 0 && errno != EINTR) break;
    if (p[0].revents & POLLIN) {
      (void)WARD_TRY(from_fs());  // whether a message came: the loop polls again either way
      continue;
    }
    if (p[1].revents || (p[0].revents & (POLLHUP | POLLERR))) break;
  }
  if (auto left = own_left(); left > 0)
    log(std::to_string(left) + " hidden file(s) of files unlinked while open could not be removed "
        "(.ward-hidden-* in their directories): the file system did not answer");
  return {};
}

// Restart: the node `ward` was being hidden when the instance failed (its RENAME in flight), so it
// may already have the hidden name. Its entry under that name, if so.
Result<std::optional<fuse_entry_out>> Relay::lookup_hiding(std::uint64_t ward, std::uint64_t fs_dir) {
  std::string to;
  for (auto& [u, r] : inflight_)
    if (r.hidden == ward && !r.then.empty()) to = std::string(names_of(r, init_out_.minor).to);
  if (to.empty()) return std::optional<fuse_entry_out>{};
  return lookup(fs_dir, to);
}

}  // namespace ward::fuse::detail
