// cache.cc's insides, shared by the files that implement rio::Cache (cache.cc: the file
// operations; cache_writeback.cc: write-back rounds and the background thread). Private to
// src/rio: nothing outside the cache includes it.
//
// Locks, in the order they are taken: wb_mu (one write-back round, truncate, unlink), then `mu`
// (every in-memory structure and every store into the region). sig_mu only guards the background
// thread's wake-up flags and is never held while waiting on `mu`.
#pragma once

#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "rio/writeback.h"
#include "ward/rio/cache.h"

namespace ward::rio {

// Pause the CPU for one iteration of a spin loop (lets the sibling hyper-thread run).
inline void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#endif
}

// The cache lock `mu`. A write holds it about a microsecond; a thread that finds it taken spins
// (up to kSpin) before it sleeps in the kernel, and does not spin at all while the holder was
// last seen on its own CPU (the holder is then not running: only sleeping lets it). Sleeping
// was the floor's tail on an idle 2-vCPU VM: the sleeper's vCPU halts (cpuidle haltpoll, polling
// off), and waking it again took ~170 us on average, so p99.9 of two writers sharing the lock
// was the hypervisor's wake-up time (docs/rio.md, "Where the tail came from"). Built on
// std::mutex, so ThreadSanitizer and condition_variable_any see an ordinary mutex.
class SpinThenSleepMutex {
 public:
  static constexpr auto kSpin = std::chrono::microseconds(30);
  void lock() {
    if (!m_.try_lock()) spin_then_sleep();
    holder_cpu_.store(sched_getcpu(), std::memory_order_relaxed);
  }
  bool try_lock() {
    if (!m_.try_lock()) return false;
    holder_cpu_.store(sched_getcpu(), std::memory_order_relaxed);
    return true;
  }
  void unlock() { m_.unlock(); }
  // Whether the holder (if the lock is held) was last seen on the calling thread's CPU.
  bool holder_here() const { return holder_cpu_.load(std::memory_order_relaxed) == sched_getcpu(); }

 private:
  void spin_then_sleep() {
    const auto until = std::chrono::steady_clock::now() + kSpin;
    for (unsigned i = 1; !holder_here(); ++i) {
      cpu_relax();
      if (m_.try_lock()) return;
      if ((i & 15) == 0 && std::chrono::steady_clock::now() >= until) break;
    }
    m_.lock();
  }
  std::mutex m_;
  std::atomic<int> holder_cpu_{-1};
};

struct Cache::Impl {
  static std::uint64_t steady_ns() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
  }
  static Error err(Errc k, std::string d) {
    Error e;
    e.kind = k;
    e.detail = std::move(d);
    return e;
  }

  CacheOptions opt;
  std::unique_ptr<Region> region;  // rio mode only
  mutable SpinThenSleepMutex mu;

  // An open backing file, shared by the cache and whoever reads or writes it without `mu`
  // (read-through, write-back rounds): closed when the last of them lets go, so an unlink never
  // closes a descriptor under a pread.
  struct BackingFd {
    int fd;
    explicit BackingFd(int f) : fd(f) {}
    BackingFd(const BackingFd&) = delete;
    BackingFd& operator=(const BackingFd&) = delete;
    ~BackingFd() { ::close(fd); }
  };
  struct File {
    bool used = false;
    std::uint64_t gen = 0;
    std::string path;
    std::uint64_t size = 0;
    std::shared_ptr<BackingFd> backing;
    // Bumped whenever a cached block of the file goes away other than by a newer version
    // (eviction, truncate, unlink): the backing file may then hold bytes a read-through that
    // began earlier did not see, so it reads again.
    std::uint64_t epoch = 0;
    // A write-back round wrote blocks of it without fdatasync (a region that survives program
    // crashes only: so does the page cache); flush and close sync it.
    bool unsynced = false;
  };
  std::vector<File> files;              // by file table index (write_through: growable)
  std::unordered_map<int, std::uint32_t> fds;
  int next_fd = 3;

  struct SlotInfo {
    bool used = false;
    std::uint32_t file = 0;
    std::uint64_t block = 0;
  };
  std::vector<SlotInfo> slots;
  std::unordered_map<std::uint64_t, std::uint32_t> index;  // key(file, block) -> slot
  std::vector<std::uint32_t> free_slots;
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
  std::atomic<int> wb_spinning_cpu{-1};         // the CPU write-back spins for `mu` on: hot paths let it in
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
      const layout::FileEntry& fe = region->file(f);
      const std::uint64_t w = fe.word.load();
      files[f].gen = layout::file_gen(w);
      // Recovery quarantined the blocks of a damaged entry; the entry itself is never reused.
      if (!region->file_valid(f)) files[f].gen = layout::kMaxSeq;
      if (!layout::file_used(w) || !region->file_valid(f)) continue;
      files[f].used = true;
      files[f].path = region->file_path(f);
      files[f].size = region->file_size(f);
    }
    for (std::uint32_t s = n; s-- > 0;) {
      const layout::Entry& e = region->entry(s);
      const layout::State state = layout::word_state(e.word.load());
      if (state == layout::kDirty || state == layout::kClean) {
        slots[s] = {true, e.file, e.block};
        index[key(e.file, e.block)] = s;
        if (state == layout::kDirty) note_dirty(key(e.file, e.block));
        else clean_order.emplace_back(s, layout::word_seq(e.word.load()));
      } else if (state == layout::kFree) {
        free_slots.push_back(s);
      }
    }
  }

  Result<int> backing_fd(std::uint32_t f) {
    File& file = files[f];
    if (!file.backing) file.backing = std::make_shared<BackingFd>(WARD_TRY(detail::open_backing(opt.backing_dir, file.path, false)));
    return file.backing->fd;
  }

  // Reads [pos, pos + len) of a backing file into dst; a hole or a short file reads as zeros.
  static Result<void> pread_full(int fd, std::byte* dst, std::uint64_t pos, std::size_t len, const std::string& path) {
    std::size_t got = 0;
    while (got < len) {
      const ssize_t r = pread(fd, dst + got, len - got, static_cast<off_t>(pos + got));
      if (r < 0) {
        if (errno == EINTR) continue;
        return std::unexpected(err(Errc::limit, "rio: " + path + ": read-through: " + std::strerror(errno)));
      }
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
    if (got < len) std::memset(dst + got, 0, len - got);
    return {};
  }

  // ---- read-through (docs/rio.md, "Write-back and locking") ------------------------------------
  // Reads bytes of file `fi` that the cache does not hold from its backing file. Called with `mu`
  // held; with `unlocked` it releases `mu` for the open (if the file is not open yet) and the
  // pread, then takes it back. Returns whether what was read still stands: false if a cached
  // block of the file went away meanwhile (epoch), so the backing file may have changed under
  // the pread — the caller looks again (the block may be cached now) and reads again. The caller
  // also checks the index: a block published meanwhile wins over the bytes read. Errors: the
  // file was unlinked meanwhile (misuse), the open or the pread failed (limit).
  Result<bool> read_through(std::uint32_t fi, std::byte* dst, std::uint64_t pos, std::size_t len, bool unlocked) {
    File& f = files[fi];
    if (!unlocked) {
      const int fd = WARD_TRY(backing_fd(fi));
      WARD_TRY(pread_full(fd, dst, pos, len, f.path));
      if (detail::during_read_through) detail::during_read_through();
      return true;
    }
    const std::uint64_t gen = f.gen, epoch = f.epoch;
    const std::string path = f.path;
    std::shared_ptr<BackingFd> fd = f.backing;
    mu.unlock();
    Result<void> r = [&]() -> Result<void> {
      if (!fd) fd = std::make_shared<BackingFd>(WARD_TRY(detail::open_backing(opt.backing_dir, path, false)));
      WARD_TRY(pread_full(fd->fd, dst, pos, len, path));
      if (detail::during_read_through) detail::during_read_through();
      return {};
    }();
    mu.lock();
    if (!f.used || f.gen != gen)
      return std::unexpected(err(Errc::misuse, "rio: " + path + ": the file was unlinked during the read-through"));
    if (fd && !f.backing) f.backing = fd;  // publish; a racing opener's duplicate closes with its last user
    WARD_TRY(std::move(r));
    return f.epoch == epoch;
  }

  static constexpr int kLockedAfter = 3;  // read-throughs overtaken this often then run under `mu`

  // Keys of blocks a write is reading through: another write of the same block waits for it
  // (load_cv, deadline writeback_wait) rather than read it twice and publish twice.
  std::unordered_set<std::uint64_t> loading;
  std::condition_variable_any load_cv;

  Result<void> wait_loading(std::uint64_t k) {
    if (!loading.contains(k)) return {};
    ++st.load_waits;
    if (detail::on_read_through_wait) detail::on_read_through_wait();
    const auto deadline = std::chrono::steady_clock::now() + opt.writeback_wait;
    while (loading.contains(k))
      if (load_cv.wait_until(mu, deadline) == std::cv_status::timeout && loading.contains(k))
        return std::unexpected(err(Errc::limit, "rio: timed out after " + std::to_string(opt.writeback_wait.count()) +
                                                    " ms waiting for another write's read-through of the block; the write was not done"));
    return {};
  }

  // The slot's version is superseded or dropped. It becomes reusable at once (program_crash
  // regions) or after durability points (synced: see Region::retire).
  void drop_slot(std::uint32_t s) {
    index.erase(key(slots[s].file, slots[s].block));
    slots[s].used = false;
    if (region->retire(s)) free_slots.push_back(s);
  }

  // A durability point with `mu` held throughout: everything so far survives a power cut
  // (synced regions); retired slots whose successors are now durable come back as free slots.
  // Only truncate, unlink and close use it (rare; they hold wb_mu too, so it never overlaps the
  // unlocked flush below).
  Result<void> durability_point() {
    WARD_TRY(region->flush());
    release_reusable();
    return {};
  }
  // Slots the last durability point made reusable go back to the free list (with `mu` held).
  std::size_t release_reusable() {
    const std::vector<std::uint32_t> r = region->take_reusable();
    free_slots.insert(free_slots.end(), r.begin(), r.end());
    if (!r.empty()) slot_cv.notify_all();
    return r.size();
  }
  // A durability point whose msyncs run without `mu` (Region::begin_flush .. sync_header): fsync,
  // and the write-back thread making room in a synced region. The caller holds wb_mu (one flush
  // at a time) and not `mu`. `released`, if given, grows by the slots it made reusable
  // (cache_writeback.cc).
  Result<void> durability_point_unlocked(std::size_t* released = nullptr);

  // Synced regions: retires up to `n` clean blocks, longest clean first (their bytes are durable
  // in the backing file); their slots become reusable after two durability points. Returns how
  // many it retired. With `mu` held.
  std::size_t retire_clean(std::size_t n) {
    std::size_t done = 0;
    while (!clean_order.empty() && done < n) {
      const auto [s, seq] = clean_order.front();
      clean_order.pop_front();
      if (!slots[s].used || region->entry(s).word.load() != layout::make_word(seq, layout::kClean)) continue;  // stale
      ++files[slots[s].file].epoch;
      drop_slot(s);
      ++st.evicted;
      ++done;
    }
    return done;
  }

  // Whether any published block is still dirty (e.g. one reaching past the end of its file).
  bool any_dirty() const {
    for (std::uint32_t s = 0; s < slots.size(); ++s)
      if (slots[s].used && layout::word_state(region->entry(s).word.load()) == layout::kDirty) return true;
    return false;
  }

  // For a clean close, when no write is in progress (with `mu` held): a version reaching past its
  // file's end, which only a write a crash cut off before its size update leaves (recovery keeps
  // the file's recorded size), is cut at the end, and one wholly past the end is dropped: else
  // write-back, which cannot tell such a version from a write in progress, leaves it dirty for
  // ever and the region never closes clean.
  Result<void> settle_ends() {
    const std::uint64_t b = bs();
    std::vector<std::uint32_t> past;
    for (const auto& [k, s] : index)
      if (slots[s].block * b >= files[slots[s].file].size) past.push_back(s);
    for (std::uint32_t s : past) drop_slot(s);
    for (std::uint32_t fi = 0; fi < files.size(); ++fi)
      if (files[fi].used) WARD_TRY(trim_end_block(fi));
    return {};
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

  bool synced() const { return region->durability() == Durability::synced; }

  // Evicts the longest-clean block (program_crash regions: its slot is free at once); false if
  // there is none.
  bool evict_clean() { return retire_clean(1) == 1 && !free_slots.empty(); }

  // Whether alloc_slot can succeed without waiting. Free slots still being written from are set
  // aside until their round ends. Synced regions: only a free slot counts — a clean block's slot
  // is reusable only after two durability points, disk I/O that the write-back thread does
  // (make_room_synced), never a writer under `mu`.
  bool has_slot() {
    while (!free_slots.empty() && pinned[free_slots.back()]) {
      pinned_free.push_back(free_slots.back());
      free_slots.pop_back();
    }
    if (!free_slots.empty()) return true;
    if (synced()) return false;
    while (!clean_order.empty()) {
      const auto [s, seq] = clean_order.front();
      if (slots[s].used && region->entry(s).word.load() == layout::make_word(seq, layout::kClean)) return true;
      clean_order.pop_front();  // stale
    }
    return false;
  }

  Result<std::uint32_t> alloc_slot() {
    // has_slot() leaves an unpinned slot at the back of free_slots, or none; a slot that eviction
    // or a durability point just released may still be read by a write-back round (pinned), so
    // ask again after evicting rather than take the back blindly.
    bool found = false;
    while (has_slot() && !(found = !free_slots.empty()) && evict_clean()) {
    }
    if (!found) return std::unexpected(err(Errc::limit, "rio: no free or clean slot; the write was not done"));
    const std::uint32_t s = free_slots.back();
    free_slots.pop_back();
    // Low water: an eighth of the cache left free or clean (synced: free). Write-back starts
    // before writers wait.
    if ((synced() ? free_slots.size() : slots.size() - dirty_estimate()) < slots.size() / 8) want_capacity();
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
    if (detail::on_slot_wait) detail::on_slot_wait();
    if (wb_owner.load() == std::this_thread::get_id()) {
      // This thread holds wb_mu (truncate): no round can start, so run one here, without `mu`.
      mu.unlock();
      auto r = synced() ? make_room_synced(0) : write_back_round(Pick::capacity, 0);
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
    slots[slot] = {true, fi, f.size / b};
    index[key(fi, f.size / b)] = slot;
    return {};
  }

  // ---- write-back rounds -----------------------------------------------------------------------
  enum class Pick {
    due,       // blocks dirty since before `due_ns` (age write-back)
    capacity,  // those, and the oldest dirty blocks until half of the cache is free or clean
    all,       // every dirty block (flush, close)
  };

  // `mu`, taken on behalf of write-back (cache_writeback.cc).
  std::unique_lock<SpinThenSleepMutex> lock_for_writeback();

  // Before a hot path takes `mu`: while the write-back thread spins for it, step aside (at most
  // kStepAside), so that a tight loop of writes cannot starve write-back. Never for a write-back
  // thread that is not running — one on this thread's CPU, or one sleeping for the lock (it
  // never raises the flag then): waiting for it would turn its scheduling delay, milliseconds
  // on a busy machine, into the write's latency (docs/rio.md, "Where the tail came from").
  static constexpr auto kStepAside = std::chrono::microseconds(10);
  void yield_to_writeback() const {
    int cpu = wb_spinning_cpu.load(std::memory_order_relaxed);
    if (cpu < 0) return;
    const auto until = std::chrono::steady_clock::now() + kStepAside;
    for (unsigned i = 1; cpu >= 0 && cpu != sched_getcpu(); ++i) {
      cpu_relax();
      if ((i & 15) == 0 && std::chrono::steady_clock::now() >= until) return;
      cpu = wb_spinning_cpu.load(std::memory_order_relaxed);
    }
  }

  // Holds wb_mu and records the owner (see wait_for_slot).
  struct IoLock {
    Impl& m;
    std::lock_guard<std::mutex> g;
    explicit IoLock(Impl& impl) : m(impl), g(impl.wb_mu) { m.wb_owner.store(std::this_thread::get_id()); }
    ~IoLock() { m.wb_owner.store({}); }
  };

  // One round; the caller holds wb_mu, not `mu`. Errors name the files that could not be
  // written; their blocks stay dirty (cache_writeback.cc). `cleaned`, if given, receives how many
  // blocks it marked clean.
  Result<void> write_back_round(Pick pick, std::uint64_t due_ns, std::uint64_t* cleaned = nullptr);
  // Synced regions: the write-back thread's answer to "no free slot" (and to the low water mark):
  // retires clean blocks (after a capacity round if there are too few), then runs the durability
  // points that make retired slots reusable, without `mu` for their I/O. The caller holds wb_mu,
  // not `mu` (cache_writeback.cc).
  Result<void> make_room_synced(std::uint64_t due_ns);
  // Drops the entries of dirty_order that no longer describe a dirty period (under `mu`).
  void compact_dirty_order();
  // The write-back thread (cache_writeback.cc).
  void background();
};

}  // namespace ward::rio
