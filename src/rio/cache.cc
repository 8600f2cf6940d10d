#include "ward/rio/cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "rio/private_path.h"
#include "rio/writeback.h"

namespace ward::rio {
namespace L = layout;
namespace fs = std::filesystem;

std::string_view to_string(Mode m) noexcept {
  switch (m) {
    case Mode::rio: return "rio";
    case Mode::write_through: return "write-through";
    case Mode::unsafe_write_back: return "unsafe-write-back";
  }
  return "unknown";
}

fs::path default_region_path(const fs::path& backing_dir, const fs::path& shared) {
  std::error_code ec;
  const std::string abs = fs::weakly_canonical(backing_dir, ec).string();
  char name[64];
  std::snprintf(name, sizeof name, "rio-%016llx", static_cast<unsigned long long>(XXH3_64bits(abs.data(), abs.size())));
  return shared / ("ward-" + std::to_string(geteuid())) / name;
}

namespace {

std::uint64_t steady_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

Error err(Errc k, std::string d) {
  Error e;
  e.kind = k;
  e.detail = std::move(d);
  return e;
}

// Checks that `fd` is still the file at `full` (a removed or replaced backing file would swallow
// written-back data).
Result<void> still_there(int fd, const fs::path& full, const std::string& path) {
  struct stat a {}, b {};
  if (fstat(fd, &a) != 0 || ::stat(full.c_str(), &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev)
    return std::unexpected(err(Errc::load_failed, path + ": the backing file was removed or replaced while the cache held "
                                                         "dirty data; the data stays in the region"));
  return {};
}

}  // namespace

struct Cache::Impl {
  CacheOptions opt;
  std::unique_ptr<Region> region;  // rio mode only
  mutable std::mutex mu;

  struct File {
    bool used = false;
    std::uint64_t gen = 0;
    std::string path;
    std::uint64_t size = 0;
    int backing = -1;
  };
  std::vector<File> files;              // by file table index (write_through: growable)
  std::unordered_map<int, std::uint32_t> fds;
  int next_fd = 3;

  struct SlotInfo {
    bool used = false;
    std::uint32_t file = 0;
    std::uint64_t block = 0;
    std::list<std::uint32_t>::iterator lru;
  };
  std::vector<SlotInfo> slots;
  std::unordered_map<std::uint64_t, std::uint32_t> index;  // key(file, block) -> slot
  std::vector<std::uint32_t> free_slots;
  std::list<std::uint32_t> lru;  // front: most recent
  CacheStats st;

  // ---- write-back (docs/rio.md, "Write-back and locking") -------------------------------------
  // No disk I/O happens under `mu`. A round picks dirty blocks and pins their slots under `mu`,
  // writes them straight from the region and fdatasyncs with `mu` released (a published
  // version's bytes never change, and a pinned slot is not handed out again), then, under `mu`,
  // marks clean each block whose entry still carries the sequence number it wrote. `mu` is held
  // a few microseconds at a time.
  std::thread bg;
  std::mutex wb_mu;                             // one round at a time; truncate and unlink hold it
                                                // too (no backing file shrinks or goes away under
                                                // a round). Taken before `mu`.
  std::atomic<std::thread::id> wb_owner{};      // who holds wb_mu
  std::atomic<int> wb_urgent{0};                // write-back waits for `mu`: hot paths let it in
  std::condition_variable_any slot_cv;          // writers waiting (on `mu`) for a slot
  std::mutex sig_mu;                            // guards the next three; never held with a wait on `mu`
  std::condition_variable bg_cv;
  bool stopping = false, capacity_wanted = false;
  // Under `mu`:
  std::unordered_map<std::uint64_t, std::uint64_t> dirty_since;     // key -> steady ns it went dirty
  std::deque<std::pair<std::uint64_t, std::uint64_t>> dirty_order;  // (key, since), oldest first
  std::deque<std::pair<std::uint32_t, std::uint64_t>> clean_order;  // (slot, seq), clean longest first
  std::vector<std::uint8_t> pinned;                                 // by slot: the running round writes it
  std::vector<std::uint32_t> pinned_free;                           // freed pinned slots, back after the round
  std::map<std::uint32_t, std::string> failing;                     // files whose last write-back failed: why
  std::uint32_t waiters = 0;
  std::uint64_t rounds_started = 0, cap_round = 0, cap_cleaned = 0;  // cap_*: the last capacity or flush round
  std::string cap_error;

  static std::uint64_t key(std::uint32_t f, std::uint64_t b) { return (std::uint64_t{f} << 40) | b; }
  std::uint32_t bs() const { return region->block_size(); }

  Result<std::uint32_t> file_of(int fd) const {
    auto it = fds.find(fd);
    if (it == fds.end()) return std::unexpected(err(Errc::misuse, "rio: bad file descriptor " + std::to_string(fd)));
    return it->second;
  }

  // Rebuilds the in-memory index from the registry (after recovery: no duplicates remain).
  void load_index() {
    const std::uint32_t n = region->nblocks();
    slots.assign(n, {});
    pinned.assign(n, 0);
    files.assign(region->nfiles(), {});
    for (std::uint32_t f = 0; f < region->nfiles(); ++f) {
      const L::FileEntry& fe = region->file(f);
      const std::uint64_t w = fe.word.load();
      files[f].gen = L::file_gen(w);
      // Recovery quarantined the blocks of a damaged entry; the entry itself is never reused.
      if (!region->file_valid(f)) files[f].gen = L::kMaxSeq;
      if (!L::file_used(w) || !region->file_valid(f)) continue;
      files[f].used = true;
      files[f].path = region->file_path(f);
      files[f].size = region->file_size(f);
    }
    for (std::uint32_t s = n; s-- > 0;) {
      const L::Entry& e = region->entry(s);
      const L::State state = L::word_state(e.word.load());
      if (state == L::kDirty || state == L::kClean) {
        slots[s] = {true, e.file, e.block, {}};
        lru.push_back(s);
        slots[s].lru = std::prev(lru.end());
        index[key(e.file, e.block)] = s;
        if (state == L::kDirty) note_dirty(key(e.file, e.block));
        else clean_order.emplace_back(s, L::word_seq(e.word.load()));
      } else if (state == L::kFree) {
        free_slots.push_back(s);
      }
    }
  }

  Result<int> backing_fd(std::uint32_t f) {
    File& file = files[f];
    if (file.backing >= 0) return file.backing;
    file.backing = WARD_TRY(detail::open_backing(opt.backing_dir, file.path, false));
    return file.backing;
  }

  void touch(std::uint32_t s) { lru.splice(lru.begin(), lru, slots[s].lru); }

  // The slot's version is superseded or dropped. It becomes reusable at once (program_crash
  // regions) or after durability points (synced: see Region::retire).
  void drop_slot(std::uint32_t s) {
    index.erase(key(slots[s].file, slots[s].block));
    lru.erase(slots[s].lru);
    slots[s].used = false;
    if (region->retire(s)) free_slots.push_back(s);
  }

  // A durability point: everything so far survives a power cut (synced regions); retired slots
  // whose successors are now durable come back as free slots.
  Result<void> durability_point() {
    WARD_TRY(region->flush());
    for (std::uint32_t s : region->take_reusable()) free_slots.push_back(s);
    return {};
  }

  // Synced regions with no free slot: rather than reuse a slot a power cut might still need,
  // retire a batch of clean blocks (their bytes are durable in the backing file) and force the
  // durability points that make retired slots reusable.
  Result<void> reclaim() {
    if (!free_slots.empty() || region->durability() != Durability::synced) return {};
    if (region->flushes_pending() == 0) {
      std::vector<std::uint32_t> clean;
      const std::size_t want = std::max<std::size_t>(1, slots.size() / 16);
      for (auto it = lru.rbegin(); it != lru.rend() && clean.size() < want; ++it)
        if (L::word_state(region->entry(*it).word.load()) == L::kClean) clean.push_back(*it);
      for (std::uint32_t s : clean) {
        drop_slot(s);
        ++st.evicted;
      }
    }
    for (int i = region->flushes_pending(); i > 0 && free_slots.empty(); --i) WARD_TRY(durability_point());
    return {};
  }

  // Whether any published block is still dirty (e.g. one reaching past the end of its file).
  bool any_dirty() const {
    for (std::uint32_t s = 0; s < slots.size(); ++s)
      if (slots[s].used && L::word_state(region->entry(s).word.load()) == L::kDirty) return true;
    return false;
  }

  // ---- slots for new versions ------------------------------------------------------------------
  // A writer never does I/O for a slot: it takes a free one, or evicts the block that has been
  // clean longest; when there is neither it waits (prepare_block) for write-back to clean some.

  std::size_t dirty_estimate() const { return std::min(slots.size(), dirty_since.size()); }

  void want_capacity() {
    {
      std::lock_guard<std::mutex> l(sig_mu);
      if (capacity_wanted) return;
      capacity_wanted = true;
    }
    bg_cv.notify_one();
  }

  // Evicts the longest-clean block; false if there is none.
  bool evict_clean() {
    while (!clean_order.empty()) {
      const auto [s, seq] = clean_order.front();
      clean_order.pop_front();
      if (!slots[s].used || region->entry(s).word.load() != L::make_word(seq, L::kClean)) continue;  // stale
      drop_slot(s);
      ++st.evicted;
      if (!free_slots.empty()) return true;
      // Synced: the dropped slot is retired, reusable only after the durability points that
      // reclaim() forces (a flush under the lock: synced regions pay for power-loss safety here).
      if (region->durability() == Durability::synced) return reclaim().has_value() && !free_slots.empty();
    }
    return false;
  }

  // Whether alloc_slot can succeed without waiting. Free slots still being written from are set
  // aside until their round ends.
  bool has_slot() {
    while (!free_slots.empty() && pinned[free_slots.back()]) {
      pinned_free.push_back(free_slots.back());
      free_slots.pop_back();
    }
    if (!free_slots.empty()) return true;
    while (!clean_order.empty()) {
      const auto [s, seq] = clean_order.front();
      if (slots[s].used && region->entry(s).word.load() == L::make_word(seq, L::kClean)) return true;
      clean_order.pop_front();  // stale
    }
    return false;
  }

  Result<std::uint32_t> alloc_slot() {
    WARD_TRY(reclaim());  // synced regions: durability points release retired slots
    // has_slot() leaves an unpinned slot at the back of free_slots, or none; a slot that eviction
    // or a durability point just released may still be read by a write-back round (pinned), so
    // ask again after evicting rather than take the back blindly.
    bool found = false;
    while (has_slot() && !(found = !free_slots.empty()) && evict_clean()) {
    }
    if (!found) return std::unexpected(err(Errc::limit, "rio: no free or clean slot; the write was not done"));
    const std::uint32_t s = free_slots.back();
    free_slots.pop_back();
    // Low water: an eighth of the cache left free or clean. Write-back starts before writers wait.
    if (slots.size() - dirty_estimate() < slots.size() / 8) want_capacity();
    return s;
  }

  void note_dirty(std::uint64_t k) {
    const std::uint64_t now = steady_ns();
    if (dirty_since.try_emplace(k, now).second) dirty_order.emplace_back(k, now);
  }

  // Called with `mu` held before a write publishes a new version of block `blk` of file `fi`:
  // makes sure alloc_slot will succeed, waiting (with `mu` released) for write-back when no slot
  // is free or clean, and notes when the block's dirty period began. The wait ends with an error
  // (nothing is written) at the writeback_wait deadline, or as soon as a write-back round that
  // started after the request cleaned nothing (the backing files cannot take the data).
  Result<void> prepare_block(std::uint32_t fi, std::uint64_t blk) {
    if (!has_slot()) {
      const std::uint64_t gen = files[fi].gen;
      Result<void> r = wait_for_slot();
      if (r && !(files[fi].used && files[fi].gen == gen))
        r = std::unexpected(err(Errc::misuse, "rio: the file was unlinked while the write waited for a slot"));
      WARD_TRY(std::move(r));
    }
    note_dirty(key(fi, blk));
    return {};
  }

  Result<void> wait_for_slot() {
    ++st.slot_waits;
    if (wb_owner.load() == std::this_thread::get_id()) {
      // This thread holds wb_mu (truncate): no round can start, so run one here, without `mu`.
      mu.unlock();
      auto r = write_back_round(Pick::capacity, 0);
      mu.lock();
      if (has_slot()) return {};
      return std::unexpected(err(Errc::limit, "rio: the cache is full of dirty blocks and write-back failed (" +
                                                  (r ? std::string("nothing could be written back") : r.error().detail) +
                                                  "); the write was not done"));
    }
    const auto deadline = std::chrono::steady_clock::now() + opt.writeback_wait;
    const std::uint64_t asked = rounds_started;
    ++waiters;
    Result<void> out;
    while (!has_slot()) {
      if (cap_round > asked && cap_cleaned == 0) {
        out = std::unexpected(err(Errc::limit, "rio: the cache is full of dirty blocks and write-back cannot make progress (" +
                                                   (cap_error.empty() ? std::string("nothing could be written back") : cap_error) +
                                                   "); the write was not done"));
        break;
      }
      want_capacity();
      if (slot_cv.wait_until(mu, deadline) == std::cv_status::timeout && !has_slot()) {
        out = std::unexpected(err(Errc::limit, "rio: timed out after " + std::to_string(opt.writeback_wait.count()) +
                                                   " ms waiting for write-back to free a slot; the write was not done"));
        break;
      }
    }
    --waiters;
    return out;
  }
  // Before a file grows past its current end: the cached block holding the end may still carry
  // bytes beyond it (from a write that never completed before a crash, or a truncation), which
  // would become visible as file content. Publish a version cut at the end.
  Result<void> trim_end_block(std::uint32_t fi) {
    const File& f = files[fi];
    const std::uint64_t b = bs();
    if (f.size % b == 0) return {};
    WARD_TRY(prepare_block(fi, f.size / b));
    auto it = index.find(key(fi, f.size / b));
    if (it == index.end() || region->entry(it->second).len <= f.size % b) return {};
    std::vector<std::byte> buf(region->block(it->second), region->block(it->second) + f.size % b);
    const std::uint32_t slot = WARD_TRY(alloc_slot());
    region->write_block(slot, fi, static_cast<std::uint32_t>(f.gen), f.size / b, buf, region->next_seq());
    if (auto again = index.find(key(fi, f.size / b)); again != index.end()) drop_slot(again->second);
    slots[slot] = {true, fi, f.size / b, {}};
    lru.push_front(slot);
    slots[slot].lru = lru.begin();
    index[key(fi, f.size / b)] = slot;
    return {};
  }

  // ---- write-back rounds -----------------------------------------------------------------------
  enum class Pick {
    due,       // blocks dirty since before `due_ns` (age write-back)
    capacity,  // those, and the oldest dirty blocks until half of the cache is free or clean
    all,       // every dirty block (flush, close)
  };

  // `mu`, taken on behalf of write-back: it spins briefly, then raises wb_urgent so that the hot
  // paths (yield_to_writeback) step aside: a tight loop of writes cannot starve write-back.
  std::unique_lock<std::mutex> lock_for_writeback() {
    std::unique_lock<std::mutex> g(mu, std::try_to_lock);
    for (int i = 0; i < 200 && !g.owns_lock(); ++i) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
      (void)g.try_lock();
    }
    if (!g.owns_lock()) {
      wb_urgent.fetch_add(1);
      g.lock();
      wb_urgent.fetch_sub(1);
    }
    return g;
  }

  // Before a hot path takes `mu`: let write-back in first if it is waiting (bounded: 1 ms).
  void yield_to_writeback() const {
    if (wb_urgent.load(std::memory_order_relaxed) == 0) return;
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1);
    while (wb_urgent.load(std::memory_order_relaxed) != 0 && std::chrono::steady_clock::now() < until)
      std::this_thread::yield();
  }

  // Holds wb_mu and records the owner (see wait_for_slot).
  struct IoLock {
    Impl& m;
    std::lock_guard<std::mutex> g;
    explicit IoLock(Impl& impl) : m(impl), g(impl.wb_mu) { m.wb_owner.store(std::this_thread::get_id()); }
    ~IoLock() { m.wb_owner.store({}); }
  };

  // One round; the caller holds wb_mu, not `mu`. Errors name the files that could not be
  // written; their blocks stay dirty.
  Result<void> write_back_round(Pick pick, std::uint64_t due_ns) {
    struct Job {
      std::uint32_t slot;
      std::uint64_t seq, key, block, picked_ns;
      std::uint32_t len;
    };
    struct FileJob {
      int fd = -1;
      std::string path, error;
      std::uint64_t size = 0;
      std::vector<Job> jobs;
    };
    std::map<std::uint32_t, FileJob> todo;
    // Each hold of `mu` ends after about 5 us of work.
    auto hold_over = [](int n, std::chrono::steady_clock::time_point t0) {
      return (n & 15) == 15 && std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(5);
    };

    // 1. Pick and pin.
    std::uint64_t id = 0;
    std::size_t want = 0, picked = 0, cursor = 0;
    for (bool more = true; more;) {
      auto g = lock_for_writeback();
      if (id == 0) {
        id = ++rounds_started;
        if (pick == Pick::capacity) {
          // Up to half the cache free or clean. Large rounds: when writers outrun the disk, each
          // round ends one wait per writer, so the fewer rounds per block, the fewer waits.
          const std::size_t target = std::max<std::size_t>(slots.size() / 2, 1), avail = slots.size() - dirty_estimate();
          want = avail < target ? target - avail : std::max<std::size_t>(slots.size() / 16, 1);
        }
        if (dirty_order.size() > 2 * dirty_since.size() + 1024) compact_dirty_order();
      }
      const std::uint64_t now = steady_ns();
      const auto t0 = std::chrono::steady_clock::now();
      auto take = [&](std::uint32_t s) {
        const std::uint32_t f = slots[s].file;
        FileJob& fj = todo[f];
        if (fj.path.empty()) {
          fj.path = files[f].path;
          if (auto fd = backing_fd(f)) fj.fd = *fd;
          else fj.error = fd.error().detail;
        }
        fj.size = files[f].size;  // the newest: the file's size moves after its blocks
        const L::Entry& e = region->entry(s);
        fj.jobs.push_back({s, L::word_seq(e.word.load()), key(f, slots[s].block), slots[s].block, now, e.len});
        pinned[s] = 1;
        ++picked;
      };
      for (int n = 0; more && !hold_over(n, t0); ++n) {
        if (pick == Pick::all) {
          if (cursor >= slots.size()) {
            more = false;
          } else if (const std::uint32_t s = static_cast<std::uint32_t>(cursor++);
                     slots[s].used && L::word_state(region->entry(s).word.load()) == L::kDirty) {
            take(s);
          }
          continue;
        }
        if (cursor >= dirty_order.size()) {
          more = false;
          continue;
        }
        const auto [k, since] = dirty_order[cursor];
        auto ds = dirty_since.find(k);
        auto ix = index.find(k);
        const bool mine = ds != dirty_since.end() && ds->second == since;
        if (!mine || ix == index.end() || L::word_state(region->entry(ix->second).word.load()) != L::kDirty) {
          if (mine) dirty_since.erase(ds);  // dropped while dirty (truncate, unlink)
          if (cursor == 0) dirty_order.pop_front();
          else ++cursor;
          continue;
        }
        ++cursor;
        if (since <= due_ns) {
          if (!pinned[ix->second]) take(ix->second);
        } else if (picked >= want) {
          more = false;  // everything after is younger
        } else if (!failing.contains(slots[ix->second].file) && !pinned[ix->second]) {
          take(ix->second);
        }
      }
    }

    // 2. Write and sync, without `mu`.
    const std::uint64_t bs = region->block_size();
    for (auto& [f, fj] : todo) {
      if (!fj.error.empty()) continue;
      if (auto ok = still_there(fj.fd, opt.backing_dir / fj.path, fj.path); !ok) {
        fj.error = ok.error().detail;
        continue;
      }
      std::sort(fj.jobs.begin(), fj.jobs.end(), [](const Job& a, const Job& b) { return a.block < b.block; });
      std::vector<detail::BlockWrite> w;
      for (const Job& j : fj.jobs)
        if (j.block * bs < fj.size)
          w.push_back({j.block * bs, {region->block(j.slot), std::min<std::uint64_t>(j.len, fj.size - j.block * bs)}});
      if (auto ok = detail::write_blocks(fj.fd, fj.path, fj.size, w); !ok) fj.error = ok.error().detail;
    }
    if (detail::after_writeback_io) detail::after_writeback_io();

    // 3. Publish "clean" where the block did not change meanwhile; unpin.
    std::string failures;
    std::uint64_t cleaned = 0;
    auto it = todo.begin();
    std::size_t j = 0;
    for (bool more = true; more;) {
      auto g = lock_for_writeback();
      const auto t0 = std::chrono::steady_clock::now();
      for (int n = 0; !hold_over(n, t0); ++n) {
        if (it == todo.end()) {
          more = false;
          break;
        }
        FileJob& fj = it->second;
        if (j == 0) {
          if (fj.error.empty()) {
            failing.erase(it->first);
            st.written_back += fj.jobs.size();
          } else {
            failing[it->first] = fj.error;
            failures += (failures.empty() ? "" : "; ") + fj.error;
          }
        }
        if (j >= fj.jobs.size()) {
          ++it;
          j = 0;
          continue;
        }
        const Job& job = fj.jobs[j++];
        pinned[job.slot] = 0;
        // Only blocks written out whole become clean: one reaching past the end can belong to a
        // write still in progress (the size moves after its blocks are published).
        if (!fj.error.empty() || job.block * bs + job.len > fj.size) continue;
        const SlotInfo& si = slots[job.slot];
        if (si.used && key(si.file, si.block) == job.key &&
            region->entry(job.slot).word.load() == L::make_word(job.seq, L::kDirty)) {
          region->set_state(job.slot, L::kClean);
          clean_order.emplace_back(job.slot, job.seq);
          dirty_since.erase(job.key);
          ++cleaned;
        } else if (auto ix = index.find(job.key);
                   ix != index.end() && L::word_state(region->entry(ix->second).word.load()) == L::kDirty) {
          // Written meanwhile: the newer version stays dirty; it is no older than our pick.
          dirty_since[job.key] = job.picked_ns;
          dirty_order.emplace_back(job.key, job.picked_ns);
        }
      }
      if (!more) {
        free_slots.insert(free_slots.end(), pinned_free.begin(), pinned_free.end());
        pinned_free.clear();
        if (pick != Pick::due) {
          cap_round = id;
          cap_cleaned = cleaned;
          cap_error = failures;
          // Capacity rounds skip files that failed: say why those blocks were not written.
          for (const auto& kv : failing)
            if (cap_error.find(kv.second) == std::string::npos) cap_error += (cap_error.empty() ? "" : "; ") + kv.second;
        }
      }
    }
    slot_cv.notify_all();
    if (!failures.empty()) return std::unexpected(err(Errc::limit, "rio: " + failures));
    return {};
  }

  // Drops the entries of dirty_order that no longer describe a dirty period (under `mu`; rare:
  // only when stale entries pile up behind one that stays dirty).
  void compact_dirty_order() {
    std::erase_if(dirty_order, [&](const auto& ks) {
      auto ds = dirty_since.find(ks.first);
      return ds == dirty_since.end() || ds->second != ks.second;
    });
  }

  // The write-back thread: age write-back every quarter of writeback_age (between 1 ms and 1 s),
  // and capacity write-back whenever a writer asks.
  void background() {
    using namespace std::chrono;
    const auto age = duration_cast<nanoseconds>(opt.writeback_age);
    const nanoseconds tick = age.count() > 0 ? std::clamp<nanoseconds>(age / 4, milliseconds(1), seconds(1)) : seconds(1);
    std::unique_lock<std::mutex> l(sig_mu);
    while (!stopping) {
      bg_cv.wait_for(l, tick, [&] { return stopping || capacity_wanted; });
      if (stopping) break;
      const bool cap = std::exchange(capacity_wanted, false);
      l.unlock();
      // Due: blocks whose dirty age passes writeback_age before the next tick.
      const std::uint64_t now = steady_ns(), early = static_cast<std::uint64_t>((age - tick).count());
      const std::uint64_t due = age.count() > 0 && now > early ? now - early : 0;
      if (cap || due > 0) {
        IoLock io(*this);
        (void)write_back_round(cap ? Pick::capacity : Pick::due, due);
      }
      l.lock();
    }
  }
};

Cache::Cache(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Cache>> Cache::open(CacheOptions opt, RecoveryReport* report) {
  std::error_code ec;
  if (opt.backing_dir.empty() || !fs::is_directory(opt.backing_dir, ec))
    return fail(Errc::misuse, "rio: backing directory '" + opt.backing_dir.string() + "' does not exist");
  auto impl = std::make_unique<Impl>();
  if (opt.mode == Mode::rio) {
    if (opt.region.path.empty()) {
      opt.region.path = default_region_path(opt.backing_dir);
      WARD_TRY(ensure_private_dir(opt.region.path.parent_path()));
    }
    impl->region = WARD_TRY(Region::open(opt.region));
    std::error_code aec;
    impl->region->set_backing_dir(fs::absolute(opt.backing_dir, aec).lexically_normal().string());
    // Warm reboot: always verify (idempotent; cheap when the region was closed cleanly).
    auto rep = WARD_TRY(recover(*impl->region, opt.backing_dir));
    if (report) *report = rep;
    impl->load_index();
  }
  impl->opt = std::move(opt);
  auto* raw = impl.get();
  std::unique_ptr<Cache> c(new Cache(std::move(impl)));
  if (raw->region) raw->bg = std::thread([raw] { raw->background(); });  // capacity write-back, and age if set
  return c;
}

Cache::~Cache() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> g(impl_->sig_mu);
    impl_->stopping = true;
  }
  impl_->bg_cv.notify_all();
  if (impl_->bg.joinable()) impl_->bg.join();
  if (impl_->region) {
    Impl::IoLock io(*impl_);
    const bool all_back = impl_->write_back_round(Impl::Pick::all, 0).has_value();
    std::lock_guard<std::mutex> g(impl_->mu);
    // Clean only if nothing is left dirty — a block reaching past the end of its file stays
    // dirty through write-back — and every retired slot is durably free: otherwise the next
    // open recovers the rest.
    bool settled = all_back;
    for (int i = impl_->region->flushes_pending(); i > 0 && settled; --i) settled = impl_->durability_point().has_value();
    if (settled && !impl_->any_dirty()) impl_->region->set_clean(true);
    (void)impl_->region->flush();
  }
  for (auto& f : impl_->files)
    if (f.backing >= 0) ::close(f.backing);
}

void Cache::abandon() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> g(impl_->sig_mu);
    impl_->stopping = true;
  }
  impl_->bg_cv.notify_all();
  if (impl_->bg.joinable()) impl_->bg.join();
  for (auto& f : impl_->files)
    if (f.backing >= 0) ::close(f.backing);
  impl_.reset();  // unmaps and unlocks without writing anything back
}

Mode Cache::mode() const { return impl_->opt.mode; }
Region* Cache::region() { return impl_->region.get(); }

Result<int> Cache::open_file(std::string_view path, int flags) {
  WARD_TRY(detail::check_relative_path(path));
  Impl& m = *impl_;
  std::lock_guard<std::mutex> g(m.mu);
  std::uint32_t fi = ~0u;
  for (std::uint32_t i = 0; i < m.files.size(); ++i)
    if (m.files[i].used && m.files[i].path == path) fi = i;
  if (fi == ~0u) {
    const fs::path full = m.opt.backing_dir / std::string(path);
    std::error_code ec;
    const bool exists = fs::exists(full, ec);
    if (!exists && !(flags & kCreate)) return fail(Errc::misuse, "rio: " + std::string(path) + ": no such file");
    // Create the backing file now, so a missing one later means it was removed.
    const int fd = WARD_TRY(detail::open_backing(m.opt.backing_dir, std::string(path), true));
    struct stat sb {};
    fstat(fd, &sb);
    if (m.region) {
      for (std::uint32_t i = 0; i < m.files.size() && fi == ~0u; ++i)
        if (!m.files[i].used) fi = i;
      if (fi == ~0u) {
        ::close(fd);
        return fail(Errc::limit, "rio: the region's file table is full (" + std::to_string(m.files.size()) + " files)");
      }
      // A new file's directory entry must survive a power cut before the region names it.
      if (!exists && m.region->durability() == Durability::synced) {
        auto synced = detail::sync_dir(full.parent_path());
        if (!synced) {
          ::close(fd);
          return std::unexpected(synced.error());
        }
      }
      Impl::File& f = m.files[fi];
      f = {true, f.gen + 1, std::string(path), static_cast<std::uint64_t>(sb.st_size), fd};
      m.region->set_file(fi, f.gen, f.path, f.size);
    } else {
      fi = static_cast<std::uint32_t>(m.files.size());
      m.files.push_back({true, 1, std::string(path), static_cast<std::uint64_t>(sb.st_size), fd});
    }
  }
  const int cfd = m.next_fd++;
  m.fds[cfd] = fi;
  if (flags & kTruncate) {
    m.mu.unlock();
    auto t = truncate(cfd, 0);
    m.mu.lock();  // before any return: `g` unlocks on the way out, so no WARD_TRY around the call
    if (!t) return std::unexpected(t.error());
  }
  return cfd;
}

Result<std::size_t> Cache::write(int fd, std::span<const std::byte> data, std::uint64_t off) {
  Impl& m = *impl_;
  m.yield_to_writeback();
  std::lock_guard<std::mutex> g(m.mu);
  const std::uint32_t fi = WARD_TRY(m.file_of(fd));
  Impl::File& f = m.files[fi];
  if (off > (1ull << 51) || data.size() > (1ull << 40)) return fail(Errc::misuse, "rio: offset or size out of range");
  ++m.st.writes;
  if (!m.region) {
    const int bfd = WARD_TRY(m.backing_fd(fi));
    std::size_t done = 0;
    while (done < data.size()) {
      const ssize_t w = pwrite(bfd, data.data() + done, data.size() - done, static_cast<off_t>(off + done));
      if (w < 0) {
        if (errno == EINTR) continue;
        return fail(Errc::limit, "rio: " + f.path + ": " + std::strerror(errno));
      }
      done += static_cast<std::size_t>(w);
    }
    if (m.opt.mode == Mode::write_through && fdatasync(bfd) != 0)
      return fail(Errc::limit, "rio: " + f.path + ": fdatasync: " + std::strerror(errno));
    f.size = std::max(f.size, off + data.size());
    return data.size();
  }
  const std::uint64_t bs = m.bs();
  if (off + data.size() > f.size && off / bs != f.size / bs)
    WARD_TRY(m.trim_end_block(fi));
  std::vector<std::byte> buf(bs);
  std::size_t done = 0;
  while (done < data.size()) {
    const std::uint64_t pos = off + done;
    const std::uint64_t blk = pos / bs, boff = pos % bs;
    const std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(bs - boff, data.size() - done));
    WARD_TRY(m.prepare_block(fi, blk));  // may wait for write-back, with the lock released
    auto it = m.index.find(Impl::key(fi, blk));
    const std::uint32_t old = it == m.index.end() ? ~0u : it->second;
    // The block's current bytes, unless this write covers all of it.
    std::uint64_t len = 0;
    if (chunk < bs) {
      const std::uint64_t in_file = f.size > blk * bs ? std::min<std::uint64_t>(bs, f.size - blk * bs) : 0;
      if (old != ~0u) {
        len = std::min<std::uint64_t>(m.region->entry(old).len, in_file);
        std::memcpy(buf.data(), m.region->block(old), len);
      } else if (in_file > 0) {
        const int bfd = WARD_TRY(m.backing_fd(fi));
        const ssize_t got = pread(bfd, buf.data(), in_file, static_cast<off_t>(blk * bs));
        if (got < 0) return fail(Errc::limit, "rio: " + f.path + ": read-through: " + std::strerror(errno));
        len = in_file;  // bytes past the backing file's end are a hole: zeros
        if (static_cast<std::uint64_t>(got) < len) std::memset(buf.data() + got, 0, len - static_cast<std::uint64_t>(got));
      }
      if (len < boff) std::memset(buf.data() + len, 0, boff - len);
    }
    std::memcpy(buf.data() + boff, data.data() + done, chunk);
    len = std::max<std::uint64_t>(len, boff + chunk);
    const std::uint32_t slot = WARD_TRY(m.alloc_slot());
    // Shadowed update: the new version goes to a free slot and is published with one store;
    // only then is the old version freed (looked up again: eviction may have taken it already).
    m.region->write_block(slot, fi, static_cast<std::uint32_t>(f.gen), blk, {buf.data(), len}, m.region->next_seq());
    if (auto again = m.index.find(Impl::key(fi, blk)); again != m.index.end()) m.drop_slot(again->second);
    m.slots[slot] = {true, fi, blk, {}};
    m.lru.push_front(slot);
    m.slots[slot].lru = m.lru.begin();
    m.index[Impl::key(fi, blk)] = slot;
    done += chunk;
  }
  if (off + data.size() > f.size) {
    f.size = off + data.size();
    m.region->set_file_size(fi, f.size);
  }
  return data.size();
}

Result<std::size_t> Cache::read(int fd, std::span<std::byte> out, std::uint64_t off) {
  Impl& m = *impl_;
  m.yield_to_writeback();
  std::lock_guard<std::mutex> g(m.mu);
  const std::uint32_t fi = WARD_TRY(m.file_of(fd));
  Impl::File& f = m.files[fi];
  ++m.st.reads;
  if (off >= f.size) return 0;
  const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), f.size - off));
  auto read_backing = [&](std::byte* dst, std::uint64_t pos, std::size_t len) -> Result<void> {
    const int bfd = WARD_TRY(m.backing_fd(fi));
    std::size_t got = 0;
    while (got < len) {
      const ssize_t r = pread(bfd, dst + got, len - got, static_cast<off_t>(pos + got));
      if (r < 0) {
        if (errno == EINTR) continue;
        return fail(Errc::limit, "rio: " + f.path + ": " + std::strerror(errno));
      }
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
    if (got < len) std::memset(dst + got, 0, len - got);  // a hole
    return {};
  };
  if (!m.region) {
    WARD_TRY(read_backing(out.data(), off, n));
    return n;
  }
  const std::uint64_t bs = m.bs();
  std::size_t done = 0;
  bool all_hit = true;
  while (done < n) {
    const std::uint64_t pos = off + done;
    const std::uint64_t blk = pos / bs, boff = pos % bs;
    const std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(bs - boff, n - done));
    auto it = m.index.find(Impl::key(fi, blk));
    if (it != m.index.end()) {
      const std::uint32_t s = it->second;
      const std::uint64_t len = m.region->entry(s).len;
      const std::size_t have = boff < len ? static_cast<std::size_t>(std::min<std::uint64_t>(chunk, len - boff)) : 0;
      std::memcpy(out.data() + done, m.region->block(s) + boff, have);
      if (have < chunk) std::memset(out.data() + done + have, 0, chunk - have);
      m.touch(s);
    } else {
      all_hit = false;
      WARD_TRY(read_backing(out.data() + done, pos, chunk));
    }
    done += chunk;
  }
  if (all_hit) ++m.st.read_hits;
  return n;
}

Result<void> Cache::fsync(int fd) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> g(m.mu);
  const std::uint32_t fi = WARD_TRY(m.file_of(fd));
  ++m.st.fsyncs;
  if (m.region) return m.durability_point();  // rio: the data is already safe; synced regions msync
  if (m.opt.mode == Mode::write_through) {
    const int bfd = WARD_TRY(m.backing_fd(fi));
    if (fdatasync(bfd) != 0) return fail(Errc::limit, "rio: fdatasync: " + std::string(std::strerror(errno)));
  }
  return {};
}

Result<void> Cache::truncate(int fd, std::uint64_t size) {
  Impl& m = *impl_;
  Impl::IoLock io(m);
  std::lock_guard<std::mutex> g(m.mu);
  const std::uint32_t fi = WARD_TRY(m.file_of(fd));
  Impl::File& f = m.files[fi];
  if (!m.region) {
    const int bfd = WARD_TRY(m.backing_fd(fi));
    if (ftruncate(bfd, static_cast<off_t>(size)) != 0) return fail(Errc::limit, "rio: ftruncate: " + std::string(std::strerror(errno)));
    if (m.opt.mode == Mode::write_through) (void)fdatasync(bfd);
    f.size = size;
    return {};
  }
  const std::uint64_t bs = m.bs();
  const std::uint64_t old_size = f.size;
  if (size > old_size)
    WARD_TRY(m.trim_end_block(fi));
  // Size first: recovery discards anything past it, so a crash mid-truncate cannot resurrect.
  f.size = size;
  m.region->set_file_size(fi, size);
  if (size < old_size) {
    std::vector<std::uint32_t> gone;
    for (auto& [k, s] : m.index)
      if ((k >> 40) == fi && m.slots[s].block * bs >= size) gone.push_back(s);
    for (std::uint32_t s : gone) m.drop_slot(s);
    // The block that now holds the end: a new version cut at the new size.
    WARD_TRY(m.trim_end_block(fi));
    // Synced regions: two durability points make the new size, the cut block and the free marks
    // of the dropped versions durable — before the backing file shrinks (else a power cut could
    // leave a shorter backing file under the old size: the tail would come back as zeros), and
    // before any later growth of the file could reach the disk and make them part of it again.
    for (int i = 0; i < 2; ++i) WARD_TRY(m.durability_point());
    // The backing file must not keep bytes past the new end either: a later extension of the
    // file would otherwise read them back through the read-through path.
    const int bfd = WARD_TRY(m.backing_fd(fi));
    struct stat sb {};
    if (fstat(bfd, &sb) == 0 && static_cast<std::uint64_t>(sb.st_size) > size &&
        ftruncate(bfd, static_cast<off_t>(size)) != 0)
      return fail(Errc::limit, "rio: " + f.path + ": truncating the backing file: " + std::strerror(errno));
  }
  return {};
}

Result<std::uint64_t> Cache::size(int fd) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> g(m.mu);
  const std::uint32_t fi = WARD_TRY(m.file_of(fd));
  return m.files[fi].size;
}

Result<void> Cache::close(int fd) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> g(m.mu);
  if (m.fds.erase(fd) == 0) return fail(Errc::misuse, "rio: bad file descriptor " + std::to_string(fd));
  return {};
}

Result<void> Cache::unlink(std::string_view path) {
  Impl& m = *impl_;
  Impl::IoLock io(m);
  std::lock_guard<std::mutex> g(m.mu);
  std::uint32_t fi = ~0u;
  for (std::uint32_t i = 0; i < m.files.size(); ++i)
    if (m.files[i].used && m.files[i].path == path) fi = i;
  const fs::path full = m.opt.backing_dir / std::string(path);
  if (fi == ~0u) {
    if (::unlink(full.c_str()) != 0) return fail(Errc::misuse, "rio: " + std::string(path) + ": " + std::strerror(errno));
    return {};
  }
  // Order, so that a crash anywhere leaves the file whole or gone, never the written-back part
  // without the cached part: mark the entry "unlinking" (recovery finishes any unlink it finds
  // so marked; synced: made durable), remove the backing file (synced: and sync the directory),
  // then free the entry (synced: durable before returning, so a name reused later is never
  // removed by a recovery that finds the old mark).
  Impl::File& f = m.files[fi];
  if (m.region) {
    m.region->set_file_state(fi, L::kFileUnlinking);
    WARD_TRY(m.durability_point());
  }
  if (f.backing >= 0) ::close(f.backing);
  f.backing = -1;
  if (::unlink(full.c_str()) != 0 && errno != ENOENT)
    return fail(Errc::limit, "rio: " + std::string(path) + ": " + std::strerror(errno));
  if (m.region && m.region->durability() == Durability::synced) WARD_TRY(detail::sync_dir(full.parent_path()));
  if (m.region) {
    std::vector<std::uint32_t> gone;
    for (auto& [k, s] : m.index)
      if ((k >> 40) == fi) gone.push_back(s);
    m.region->set_file_state(fi, L::kFileFree);
    for (std::uint32_t s : gone) m.drop_slot(s);
    WARD_TRY(m.durability_point());
  }
  f.used = false;
  std::erase_if(m.fds, [&](const auto& kv) { return kv.second == fi; });
  return {};
}

Result<void> Cache::flush() {
  Impl& m = *impl_;
  if (m.region) {
    Impl::IoLock io(m);
    return m.write_back_round(Impl::Pick::all, 0);
  }
  std::lock_guard<std::mutex> g(m.mu);
  for (auto& f : m.files)
    if (f.used && f.backing >= 0) (void)fdatasync(f.backing);
  return {};
}

CacheStats Cache::stats() const {
  const Impl& m = *impl_;
  std::lock_guard<std::mutex> g(m.mu);
  CacheStats s = m.st;
  if (m.region) {
    s.blocks_total = m.region->nblocks();
    for (std::uint32_t i = 0; i < s.blocks_total; ++i) {
      switch (L::word_state(m.region->entry(i).word.load())) {
        case L::kDirty: ++s.blocks_dirty; break;
        case L::kClean: ++s.blocks_clean; break;
        case L::kFree: ++s.blocks_free; break;
        default: break;
      }
    }
  }
  return s;
}

}  // namespace ward::rio
