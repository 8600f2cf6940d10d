// The FUSE relay's journal (--journal, --snapshot; docs/fuse.md, "Journal"): every request that
// changed the file system or bound an id the kernel holds, in ward's ids, from the mount on; after
// a restart the snapshots are put back and the journal is replayed into the new instance before
// anything else, binding ward's ids to the new instance's. relay_impl.h has the class's contract.
#include <cerrno>

#include "fuse/relay_impl.h"

namespace ward::fuse::detail {

Result<void> Relay::open_journal() {
  if (!o_.snapshots.empty() && !o_.journal)
    return fail(Errc::misuse, "--snapshot needs --journal (a snapshot is put back before a journal replay)");
  for (const auto& path : o_.snapshots) snapshots_.push_back(WARD_TRY(Snapshot::take(path)));
  return {};
}

// Sends the journal, in order, to the new instance: it then holds what the kernel was told, and
// the maps say which of its ids each ward id is. Where the instance answered differently from
// the first time, the journal no longer describes it: the unexpected value says where and how.
Result<std::expected<Relay::Replayed, std::string>> Relay::replay() {
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
    auto diverged = [&](const std::string& why) -> Result<std::expected<Replayed, std::string>> {
      return std::expected<Replayed, std::string>(std::unexpect, "journal replay stopped at entry " +
                                                                     std::to_string(i) + " of " +
                                                                     std::to_string(journal_.size()) + " (" +
                                                                     j.op->name + "): " + why);
    };
    if (err != 0) return diverged(std::string("an id it names is not bound: ") + std::strerror(err));
    auto reply = WARD_TRY(call_again(std::move(msg)));
    auto oh = load<fuse_out_header>(reply.data());
    if (oh.error != 0) return diverged(std::string("it failed this time: ") + std::strerror(-oh.error));
    const char* body = reply.data() + sizeof oh;
    if (j.node) {
      auto e = load<fuse_entry_out>(body);
      m.nodes[j.node] = e.nodeid;
      m.inos[j.node] = e.attr.ino;
    }
    if (j.fh)
      m.handles[j.fh] = load<fuse_open_out>(body + (j.opcode == FUSE_CREATE ? sizeof(fuse_entry_out) : 0)).fh;
    if (j.opcode == FUSE_RELEASE && j.ids.has_fh) m.handles.erase(j.ids.fh);
    ++stats_.replayed;
  }
  return std::expected<Replayed, std::string>{std::move(m)};
}

void Relay::journal(Journaled j) {
  std::size_t bytes = j.msg.size() + sizeof j;
  if (journal_bytes_ + bytes > o_.journal_limit) {
    drop_journal("it reached --journal-limit (" + std::to_string(o_.journal_limit) +
                 " bytes); restarts now find nodes by name and cannot bring back what the file system "
                 "held only in memory");
    return;
  }
  journal_bytes_ += bytes;
  journal_.push_back(std::move(j));
  stats_.journal_entries = journal_.size();
  stats_.journal_bytes = journal_bytes_;
}

// What the kernel was told that the journal keeps. A request succeeded (`node` and `fh`: the ward
// ids its reply bound, 0 if none): kept if its opcode changes state or binds an id (a negative
// LOOKUP binds nothing).
void Relay::journal_reply(const InFlight& r, std::uint64_t node, std::uint64_t fh) {
  if (!r.op->journal || !journaling() || (r.opcode == FUSE_LOOKUP && node == 0)) return;
  Journaled j;
  j.msg = with_ward_ids(r);
  j.op = r.op;
  j.opcode = r.opcode;
  j.ids = r.ids;
  j.node = node;
  j.fh = r.opcode == FUSE_OPEN || r.opcode == FUSE_CREATE ? fh : 0;
  journal(std::move(j));
}

// A READDIRPLUS entry bound `node` as `name` in `dir`: a replay binds it as a LOOKUP of the name.
void Relay::journal_lookup(std::uint64_t dir, std::string_view name, std::uint64_t node) {
  if (!journaling()) return;
  Journaled j;
  j.msg = message(FUSE_LOOKUP, 0, dir, nullptr, 0, name);
  j.op = op_info(FUSE_LOOKUP);
  j.opcode = FUSE_LOOKUP;
  j.ids.node = dir;
  j.node = node;
  journal(std::move(j));
}

// The instance was told to forget `count` lookups of ward's `node`: so is the replayed one.
void Relay::journal_forget(std::uint64_t node, std::uint64_t count) {
  if (!journaling()) return;
  Journaled j;
  j.ids.node = node;
  j.forget = count;
  journal(std::move(j));
}

void Relay::drop_journal(const std::string& why) {
  log("the journal is dropped: " + why);
  journal_dropped_ = true;
  journal_.clear();
  journal_.shrink_to_fit();
  journal_bytes_ = 0;
  stats_.journal_entries = stats_.journal_bytes = 0;
  stats_.journal_dropped = why;
  event(Event::Kind::journal_dropped, why);
}

}  // namespace ward::fuse::detail
