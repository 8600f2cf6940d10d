// Warm reboot (see cache.h: recover()).
#include <unistd.h>

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
    << files << " file(s), " << stale_freed << " stale versions freed, " << corrupt.size() << " corrupt, "
    << unwritable.size() << " file(s) could not be written";
  return o.str();
}

Result<RecoveryReport> recover(Region& r, const std::filesystem::path& dir) {
  RecoveryReport rep;
  rep.needed = !r.was_clean();
  rep.generation = r.header().generation.load();
  const std::uint32_t nfiles = r.nfiles();
  const std::uint64_t bs = r.block_size();
  auto file_path = [&](std::uint32_t f) {
    const L::FileEntry& fe = r.file(f);
    return std::string(fe.path, std::min<std::size_t>(fe.path_len, L::kPathMax - 1));
  };

  // 1. Classify every published entry; keep the newest valid version of each (file, block).
  std::map<std::pair<std::uint32_t, std::uint64_t>, std::uint32_t> best;
  for (std::uint32_t s = 0; s < r.nblocks(); ++s) {
    const L::Entry& e = r.entry(s);
    const std::uint64_t w = e.word.load(std::memory_order_acquire);
    const L::State st = L::word_state(w);
    if (st == L::kFree) continue;
    ++rep.blocks_in_use;
    const bool known_file = e.file < nfiles && L::file_used(r.file(e.file).word.load()) &&
                            L::file_gen(r.file(e.file).word.load()) == e.file_gen;
    if (st == L::kQuarantined) {
      rep.corrupt.push_back({s, known_file ? file_path(e.file) : "?", e.block, "checksum mismatch (quarantined)"});
      continue;
    }
    if (st != L::kDirty && st != L::kClean) {
      rep.corrupt.push_back({s, "?", e.block, "unknown state " + std::to_string(st)});
      r.set_state(s, L::kQuarantined);
      continue;
    }
    if (!known_file) {  // its file was unlinked (or the slot reused): nothing to write back
      r.set_state(s, L::kFree);
      ++rep.stale_freed;
      continue;
    }
    if (!r.entry_valid(s)) {
      // Acknowledged data that no longer matches its checksum: never written back silently.
      rep.corrupt.push_back({s, file_path(e.file), e.block, "checksum mismatch"});
      r.set_state(s, L::kQuarantined);
      continue;
    }
    if (e.block * bs >= r.file(e.file).size.load()) {  // past a truncation
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

  // 2. Write every file's dirty blocks back (and make each used file's size right).
  std::map<std::uint32_t, std::vector<std::uint32_t>> dirty;
  for (const auto& [key, s] : best)
    if (L::word_state(r.entry(s).word.load()) == L::kDirty) dirty[key.first].push_back(s);
  for (std::uint32_t f = 0; f < nfiles; ++f) {
    if (!L::file_used(r.file(f).word.load())) continue;
    const std::string path = file_path(f);
    auto it = dirty.find(f);
    const std::vector<std::uint32_t> none;
    const auto& slots = it == dirty.end() ? none : it->second;
    auto fd = detail::open_backing(dir, path, false);
    if (!fd) {
      if (!slots.empty()) rep.unwritable.push_back(fd.error().detail);
      continue;
    }
    auto ok = detail::write_back(r, *fd, path, r.file(f).size.load(), slots);
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
