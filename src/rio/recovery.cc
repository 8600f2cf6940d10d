// Warm reboot (see cache.h: recover()).
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <sstream>

#include "rio/writeback.h"
#include "ward/rio/cache.h"

namespace ward::rio {
namespace L = layout;

std::string RecoveryReport::summary() const {
  std::ostringstream o;
  o << (needed ? "recovered a region its owner did not close cleanly" : "region was closed cleanly") << " (generation "
    << generation << "): " << blocks_in_use << " blocks in use, " << written_back << " dirty blocks written back to "
    << files << " file(s), " << stale_freed << " stale versions freed, " << torn_unsynced << " unacknowledged versions torn by a power cut dropped, "
    << unlinks_finished << " interrupted unlinks finished, " << corrupt.size() << " corrupt, "
    << unwritable.size() << " file(s) could not be written";
  return o.str();
}

Result<RecoveryReport> recover(Region& r, const std::filesystem::path& dir) {
  RecoveryReport rep;
  rep.needed = !r.was_clean();
  rep.generation = r.generation();
  // A crashed synced owner's last stores may still be only in the page cache: make everything
  // durable before anything is freed on the strength of a newer version.
  WARD_TRY(r.sync_all());
  const Region::Previous& prev = r.previous();
  if (prev.damaged)
    rep.corrupt.push_back({~0u, "(header)", 0, "both copies of the header state fail their checksum (clean flag, backing "
                                               "directory and sync point unknown)"});
  // Debris, not damage: a version written after the previous owner's last flush whose data does
  // not match, when a reboot came in between (a power cut wrote some of its pages and not
  // others). It was never acknowledged as durable and its predecessor is intact (see
  // Region::retire). Without a reboot the page cache was coherent: any mismatch is damage.
  const bool power_cut = prev.synced && prev.rebooted;
  const std::uint32_t nfiles = r.nfiles();
  const std::uint64_t bs = r.block_size();

  // 0. The file table: an entry that fails its checks is not acted on at all (its blocks are
  //    quarantined, its backing file is left alone).
  enum class Kind : std::uint8_t { free, used, unlinking, damaged };
  std::vector<Kind> kind(nfiles, Kind::free);
  for (std::uint32_t f = 0; f < nfiles; ++f) {
    if (!r.file_valid(f)) {
      kind[f] = Kind::damaged;
      rep.corrupt.push_back({~0u, "(file table entry " + std::to_string(f) + ")", 0,
                             "fails its checks: its blocks are quarantined, its backing file is not touched"});
      continue;
    }
    const L::FileState s = L::file_state(r.file(f).word.load());
    kind[f] = s == L::kFileUsed ? Kind::used : s == L::kFileUnlinking ? Kind::unlinking : Kind::free;
  }
  auto quarantine = [&](std::uint32_t s, std::string file, std::string why) {
    rep.corrupt.push_back({s, std::move(file), r.entry(s).block, std::move(why)});
    r.set_state(s, L::kQuarantined);
  };

  // 1. Classify every published entry; keep the newest valid version of each (file, block).
  //    Checks come before anything is decided on an entry's fields.
  std::map<std::pair<std::uint32_t, std::uint64_t>, std::uint32_t> best;
  for (std::uint32_t s = 0; s < r.nblocks(); ++s) {
    const L::Entry& e = r.entry(s);
    const std::uint64_t w = e.word.load(std::memory_order_acquire);
    if (!L::word_ok(w)) {
      ++rep.blocks_in_use;
      quarantine(s, "?", "state word fails its check");
      continue;
    }
    const L::State st = L::word_state(w);
    if (st == L::kFree) continue;
    ++rep.blocks_in_use;
    const bool file_ok = e.file < nfiles && kind[e.file] == Kind::used;
    const std::string name = file_ok ? r.file_path(e.file) : "?";
    if (st == L::kQuarantined) {
      rep.corrupt.push_back({s, name, e.block, "checksum mismatch (quarantined)"});
      continue;
    }
    if (st != L::kDirty && st != L::kClean) {
      quarantine(s, name, "unknown state " + std::to_string(st));
      continue;
    }
    if (!r.entry_valid(s)) {
      if (power_cut && L::word_seq(w) >= prev.synced_seq) {
        r.set_state(s, L::kFree);
        ++rep.torn_unsynced;
        continue;
      }
      // Acknowledged data that no longer matches its checksum: never written back silently.
      quarantine(s, name, "checksum mismatch");
      continue;
    }
    if (e.file < nfiles && kind[e.file] == Kind::damaged) {
      quarantine(s, "?", "its file table entry " + std::to_string(e.file) + " is damaged");
      continue;
    }
    if (!file_ok || static_cast<std::uint32_t>(L::file_gen(r.file(e.file).word.load())) != e.file_gen) {
      r.set_state(s, L::kFree);  // its file was unlinked (or the slot reused): nothing to write back
      ++rep.stale_freed;
      continue;
    }
    if (e.block * bs >= r.file_size(e.file)) {  // past a truncation
      r.set_state(s, L::kFree);
      ++rep.stale_freed;
      continue;
    }
    auto [it, inserted] = best.try_emplace({e.file, e.block}, s);
    if (!inserted) {
      const std::uint32_t other = it->second;
      const bool newer = L::word_seq(w) > L::word_seq(r.entry(other).word.load());
      const std::uint32_t loser = newer ? other : s;
      if (newer) it->second = s;
      r.set_state(loser, L::kFree);
      ++rep.stale_freed;
    }
  }

  // 2. Finish interrupted unlinks: the backing file goes first, then the entry (a crash in
  //    between repeats this). Its blocks were freed above as orphans.
  for (std::uint32_t f = 0; f < nfiles; ++f) {
    if (kind[f] != Kind::unlinking) continue;
    const std::string path = r.file_path(f);
    bool reused = false;  // the name belongs to a newer file now: not ours to remove
    for (std::uint32_t g = 0; g < nfiles; ++g) reused |= kind[g] == Kind::used && r.file_path(g) == path;
    const std::filesystem::path full = dir / path;
    if (!reused && ::unlink(full.c_str()) != 0 && errno != ENOENT) {
      rep.unwritable.push_back(path + ": finishing an interrupted unlink: " + std::strerror(errno));
      continue;
    }
    if (r.durability() == Durability::synced) WARD_TRY(detail::sync_dir(full.parent_path()));
    r.set_file_state(f, L::kFileFree);
    ++rep.unlinks_finished;
  }

  // 3. Write every file's dirty blocks back (and make each used file's size right).
  std::map<std::uint32_t, std::vector<std::uint32_t>> dirty;
  for (const auto& [key, s] : best)
    if (L::word_state(r.entry(s).word.load()) == L::kDirty) dirty[key.first].push_back(s);
  for (std::uint32_t f = 0; f < nfiles; ++f) {
    if (kind[f] != Kind::used) continue;
    const std::string path = r.file_path(f);
    auto it = dirty.find(f);
    const std::vector<std::uint32_t> none;
    const auto& slots = it == dirty.end() ? none : it->second;
    auto fd = detail::open_backing(dir, path, false);
    if (!fd) {
      if (!slots.empty()) rep.unwritable.push_back(fd.error().detail);
      continue;
    }
    auto ok = detail::write_back(r, *fd, path, r.file_size(f), slots);
    ::close(*fd);
    if (!ok) {
      rep.unwritable.push_back(ok.error().detail);
      continue;
    }
    if (!slots.empty()) {
      rep.written_back += static_cast<std::uint32_t>(slots.size());
      ++rep.files;
    }
  }
  WARD_TRY(r.flush());
  return rep;
}

}  // namespace ward::rio
