// rio::Cache's write-back (docs/rio.md, "Write-back and locking"): the rounds that write dirty
// blocks to their backing files without the cache lock, and the background thread that runs them
// for age and for capacity.
#include <pthread.h>
#include <sys/stat.h>

#include "rio/cache_impl.h"

namespace ward::rio {
namespace L = layout;
namespace fs = std::filesystem;

namespace {

// Checks that `fd` is still the file at `full` (a removed or replaced backing file would swallow
// written-back data).
Result<void> still_there(int fd, const fs::path& full, const std::string& path) {
  struct stat a {}, b {};
  if (fstat(fd, &a) != 0 || ::stat(full.c_str(), &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev)
    return std::unexpected(Cache::Impl::err(Errc::load_failed, path + ": the backing file was removed or replaced while the cache held "
                                                         "dirty data; the data stays in the region"));
  return {};
}

}  // namespace

// `mu`, taken on behalf of write-back. While it spins it publishes its CPU, and the hot paths
// (yield_to_writeback) step aside: a tight loop of writes cannot starve write-back. When the
// holder was last seen on this thread's CPU (it is not running: spinning would only keep it
// off the CPU), or after kGiveUp of spinning, it sleeps for the lock like anyone else, flag
// down; the holder's unlock wakes it, and a woken sleeper usually preempts the waker on a
// shared CPU, so it gets the lock next. (Yielding instead left age write-back behind a writer
// sharing its CPU for whole time slices: the oldest dirty age rose from 55 to 75-83 ms.)
std::unique_lock<SpinThenSleepMutex> Cache::Impl::lock_for_writeback() {
  std::unique_lock g(mu, std::try_to_lock);
  if (g.owns_lock()) return g;
  constexpr auto kGiveUp = std::chrono::milliseconds(2);
  const auto until = std::chrono::steady_clock::now() + kGiveUp;
  for (unsigned i = 1; !g.try_lock(); ++i) {
    if (mu.holder_here() || ((i & 15) == 0 && std::chrono::steady_clock::now() >= until)) {
      wb_spinning_cpu.store(-1, std::memory_order_relaxed);
      g.lock();
      break;
    }
    wb_spinning_cpu.store(sched_getcpu(), std::memory_order_relaxed);
    cpu_relax();
  }
  wb_spinning_cpu.store(-1, std::memory_order_relaxed);
  return g;
}

// One round; the caller holds wb_mu, not `mu`. Errors name the files that could not be
// written; their blocks stay dirty.
Result<void> Cache::Impl::write_back_round(Pick pick, std::uint64_t due_ns, std::uint64_t* cleaned_out) {
  struct Job {
    std::uint32_t slot;
    std::uint64_t seq, key, block, picked_ns;
    std::uint32_t len;
    bool superseded = false;  // a newer version of the block is in the same round: not written
  };
  struct FileJob {
    std::shared_ptr<BackingFd> fd;  // null: opened in step 2, published in step 3
    std::uint64_t gen = 0;
    std::string path, error;
    std::uint64_t size = 0;
    std::vector<Job> jobs;
  };
  // Where the region survives only a crash of the program, write-back need not reach the disk:
  // the page cache survives that too. Synced regions free a clean block's slot for reuse, so its
  // data must be on disk first; flush and close promise the disk.
  const bool sync = pick == Pick::all || region->durability() == Durability::synced;
  std::map<std::uint32_t, FileJob> todo;
  // Each hold of `mu` ends after about 5 us of work.
  auto hold_over = [](int n, std::chrono::steady_clock::time_point t0) {
    return (n & 15) == 15 && std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(5);
  };
  const bool one_per_hold = static_cast<bool>(detail::between_picks);

  // 1. Pick and pin.
  std::uint64_t id = 0;
  std::size_t want = 0, picked = 0, cursor = 0;
  for (bool more = true; more;) {
    if (id != 0 && one_per_hold) detail::between_picks();
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
      if (sync)  // files written back earlier without a sync get one now, blocks or not
        for (std::uint32_t f = 0; f < files.size(); ++f)
          if (files[f].used && files[f].unsynced && files[f].backing) {
            FileJob& fj = todo[f];
            fj.path = files[f].path, fj.fd = files[f].backing, fj.gen = files[f].gen, fj.size = files[f].size;
          }
    }
    const std::uint64_t now = steady_ns();
    const auto t0 = std::chrono::steady_clock::now();
    const std::size_t picked_before = picked;
    auto take = [&](std::uint32_t s) {
      const std::uint32_t f = slots[s].file;
      FileJob& fj = todo[f];
      if (fj.path.empty()) {
        fj.path = files[f].path;
        fj.fd = files[f].backing;
        fj.gen = files[f].gen;
      }
      fj.size = files[f].size;  // the newest: the file's size moves after its blocks
      const L::Entry& e = region->entry(s);
      fj.jobs.push_back({s, L::word_seq(e.word.load()), key(f, slots[s].block), slots[s].block, now, e.len});
      pinned[s] = 1;
      ++picked;
    };
    for (int n = 0; more && !hold_over(n, t0) && !(one_per_hold && picked > picked_before); ++n) {
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
    if (!fj.fd) {
      auto fd = detail::open_backing(opt.backing_dir, fj.path, false);
      if (!fd) {
        fj.error = fd.error().detail;
        continue;
      }
      fj.fd = std::make_shared<BackingFd>(*fd);
    }
    if (auto ok = still_there(fj.fd->fd, opt.backing_dir / fj.path, fj.path); !ok) {
      fj.error = ok.error().detail;
      continue;
    }
    // A block can be picked twice, once per version, when a write published a new version
    // between two holds of `mu` (Pick::all scans the slots). Only the newest is written: writing
    // both, the older might land last, and the file would keep it under a version marked clean.
    std::sort(fj.jobs.begin(), fj.jobs.end(),
              [](const Job& a, const Job& b) { return a.block != b.block ? a.block < b.block : a.seq > b.seq; });
    for (std::size_t i = 1; i < fj.jobs.size(); ++i) fj.jobs[i].superseded = fj.jobs[i].block == fj.jobs[i - 1].block;
    std::vector<detail::BlockWrite> w;
    for (const Job& j : fj.jobs)
      if (!j.superseded && j.block * bs < fj.size)
        w.push_back({j.block * bs, {region->block(j.slot), std::min<std::uint64_t>(j.len, fj.size - j.block * bs)}});
    if (auto ok = detail::write_blocks(fj.fd->fd, fj.path, fj.size, w, sync); !ok) fj.error = ok.error().detail;
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
        // A file opened in step 2 is kept, unless unlinked meanwhile or opened by someone else.
        File& file = files[it->first];
        const bool same = file.used && file.gen == fj.gen;
        if (fj.fd && !file.backing && same) file.backing = fj.fd;
        if (fj.error.empty() && same) file.unsynced = !sync;
        if (fj.error.empty()) {
          failing.erase(it->first);
          st.written_back += static_cast<std::uint64_t>(std::count_if(fj.jobs.begin(), fj.jobs.end(), [](const Job& x) { return !x.superseded; }));
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
      if (job.superseded || !fj.error.empty() || job.block * bs + job.len > fj.size) continue;
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
      // Synced regions: cleaning frees no slot; make_room_synced reports its whole work instead.
      if (pick != Pick::due && !synced()) {
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
  if (cleaned_out) *cleaned_out = cleaned;
  if (!failures.empty()) return std::unexpected(err(Errc::limit, "rio: " + failures));
  return {};
}

Result<void> Cache::Impl::durability_point_unlocked(std::size_t* released) {
  Region::FlushTicket t;
  {
    auto g = lock_for_writeback();
    t = region->begin_flush();
  }
  if (!t.active) return {};
  if (detail::during_unlocked_flush) detail::during_unlocked_flush(0);
  // The disk I/O, without `mu`: writers go on storing (their pages go on the list for the next
  // flush) and retiring slots (they wait for the next flush too).
  Result<void> r = region->sync_pages(t);
  if (detail::during_unlocked_flush) detail::during_unlocked_flush(1);
  {
    auto g = lock_for_writeback();
    region->end_flush(t, r.has_value());
    const std::size_t n = release_reusable();
    if (released) *released += n;
  }
  WARD_TRY(std::move(r));
  // The header page (synced_seq) without `mu` too: see Region::FlushTicket for why nothing that
  // end_flush released depends on it.
  return region->sync_header();
}

Result<void> Cache::Impl::make_room_synced(std::uint64_t due_ns) {
  // Room enough that writers rarely wait: an eighth of the cache free or on its way to free.
  const std::size_t target = std::max<std::size_t>(slots.size() / 8, 1);
  std::uint64_t id = 0, cleaned = 0;
  std::size_t released = 0;
  std::string why;
  auto retire_to_target = [&] {  // with `mu`; true if the target is met
    const std::size_t have = free_slots.size() + region->slots_in_flight();
    if (have < target) retire_clean(target - have);
    return free_slots.size() + region->slots_in_flight() >= target;
  };
  bool enough = false;
  {
    auto g = lock_for_writeback();
    id = ++rounds_started;
    enough = retire_to_target();
  }
  // Too few clean blocks to retire: clean some first (a capacity round, fdatasynced).
  if (!enough || due_ns > 0) {
    auto r = write_back_round(enough ? Pick::due : Pick::capacity, due_ns, &cleaned);
    if (!r) why = r.error().detail;
    auto g = lock_for_writeback();
    retire_to_target();
  }
  // Two durability points: the first makes the retired slots' successors durable (they are then
  // marked free), the second makes those free marks durable (they are then reusable).
  for (int i = 0; i < 2; ++i) {
    {
      auto g = lock_for_writeback();
      if (region->flushes_pending() == 0) break;
    }
    if (auto r = durability_point_unlocked(&released); !r) {
      why += (why.empty() ? "" : "; ") + r.error().detail;
      break;
    }
  }
  {
    auto g = lock_for_writeback();
    cap_round = id;
    cap_cleaned = cleaned + released;
    cap_error = why;
    for (const auto& kv : failing)
      if (cap_error.find(kv.second) == std::string::npos) cap_error += (cap_error.empty() ? "" : "; ") + kv.second;
  }
  slot_cv.notify_all();
  if (!why.empty()) return std::unexpected(err(Errc::limit, "rio: " + why));
  return {};
}

// Drops the entries of dirty_order that no longer describe a dirty period (under `mu`; rare:
// only when stale entries pile up behind one that stays dirty).
void Cache::Impl::compact_dirty_order() {
  std::erase_if(dirty_order, [&](const auto& ks) {
    auto ds = dirty_since.find(ks.first);
    return ds == dirty_since.end() || ds->second != ks.second;
  });
}

// The write-back thread: age write-back every quarter of writeback_age (between 1 ms and 1 s),
// and capacity write-back whenever a writer asks.
void Cache::Impl::background() {
  using namespace std::chrono;
  const auto age = duration_cast<nanoseconds>(opt.writeback_age);
  const nanoseconds tick = age.count() > 0 ? std::clamp<nanoseconds>(age / 4, milliseconds(1), seconds(1)) : seconds(1);
  pthread_setname_np(pthread_self(), "rio-writeback");  // for top, perf and gdb
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
      if (detail::around_background_work) detail::around_background_work(true);
      if (cap && synced()) (void)make_room_synced(due);
      else (void)write_back_round(cap ? Pick::capacity : Pick::due, due);
      if (detail::around_background_work) detail::around_background_work(false);
    }
    l.lock();
  }
}

}  // namespace ward::rio
