// `ward bench rio`: the Rio cache beside its baselines, on a disk-backed file system (under the
// work directory) and on tmpfs, in one run: 4 KiB write+fsync in rio mode (each protection mode)
// vs write-through vs unsafe write-back; 64 KiB and 1 MiB writes; sequential reads of cached data
// vs plain reads; and the plain system calls Rio is an alternative to (4 KiB pwrite with no sync,
// pwrite+fdatasync, a store into a MAP_SHARED mapping with and without msync), for
// docs/rio.md's guarantee table. Write stalls (stall_rows): 4 KiB write latency percentiles under
// two writers and 4x more file data than cache (region on tmpfs, and a synced region file on the disk),
// and how old dirty data gets under a busy writer.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <regex>
#include <thread>
#include <vector>

#include "commands.h"
#include "floors.h"
#include "report.h"
#include "rio/private_path.h"
#include "ward/rio/cache.h"
#include "ward/rio/heap.h"
#ifdef WARD_HAVE_PMEMOBJ
#include <libpmemobj.h>
#endif

namespace ward::cli {
namespace {

namespace fs = std::filesystem;

struct Where {
  std::string name;  // "disk" or "tmpfs"
  fs::path dir;
};

constexpr std::uint64_t kSpan = 8ull << 20;  // writes land in the first 8 MiB of the file

// Where the regions go: a private directory on tmpfs made by run() (see rio/private_path.h).
fs::path g_region_dir;

// A cache in its own fresh directory; removed (with its region) when done.
struct Setup {
  fs::path dir, region;
  std::unique_ptr<rio::Cache> cache;
  int fd = -1;
  // `synced`: the region is a file beside the backing files (on w's file system), and fsync makes
  // it durable (Durability::synced); otherwise it is on tmpfs.
  Setup(const Where& w, rio::Mode mode, rio::Protection prot, benchmark::State& st, bool synced = false,
        std::uint64_t region_size = 64ull << 20) {
    static int n = 0;
    dir = w.dir / fmt::format("b{}-{}", getpid(), n++);
    region = (synced ? w.dir : g_region_dir) / fmt::format("r{}.rio", n);
    std::error_code ec;
    fs::create_directories(dir, ec);
    rio::CacheOptions o;
    o.backing_dir = dir;
    o.region.path = region;
    o.region.size = region_size;
    o.region.protection = prot;
    o.region.durability = synced ? rio::Durability::synced : rio::Durability::program_crash;
    o.mode = mode;
    o.writeback_age = std::chrono::milliseconds(0);
    auto c = rio::Cache::open(o);
    if (!c) {
      st.SkipWithError(c.error().detail.c_str());
      return;
    }
    cache = std::move(*c);
    auto f = cache->open_file("bench.dat");
    if (!f) {
      st.SkipWithError(f.error().detail.c_str());
      return;
    }
    fd = *f;
  }
  ~Setup() {
    cache.reset();
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::remove(region, ec);
  }
};

void write_fsync(benchmark::State& st, Where w, rio::Mode mode, rio::Protection prot, std::size_t size, bool synced = false,
                 std::uint64_t region_size = 64ull << 20) {
  Setup s(w, mode, prot, st, synced, region_size);
  if (!s.cache) return;
  std::vector<std::byte> buf(size, std::byte{0x5a});
  std::uint64_t off = 0;
  for (auto _ : st) {
    auto r = s.cache->write(s.fd, buf, off);
    auto f = s.cache->fsync(s.fd);
    if (!r || !f) return st.SkipWithError(r ? f.error().detail.c_str() : r.error().detail.c_str());
    off = (off + size) % kSpan;
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * size));
}

// Sequential 4 KiB reads over 8 MiB already in the cache.
void read_cached(benchmark::State& st, Where w) {
  Setup s(w, rio::Mode::rio, rio::kDefaultProtection, st);
  if (!s.cache) return;
  std::vector<std::byte> buf(4096, std::byte{1});
  for (std::uint64_t off = 0; off < kSpan; off += 4096)
    if (!s.cache->write(s.fd, buf, off)) return st.SkipWithError("fill failed");
  std::uint64_t off = 0;
  for (auto _ : st) {
    auto r = s.cache->read(s.fd, buf, off);
    if (!r) return st.SkipWithError(r.error().detail.c_str());
    off = (off + 4096) % kSpan;
  }
}

// The floor: plain pread of the same 8 MiB from a file in the page cache.
void read_plain(benchmark::State& st, Where w) {
  std::error_code ec;
  const fs::path p = w.dir / fmt::format("plain-{}.dat", getpid());
  std::vector<std::byte> buf(4096, std::byte{1});
  const int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return st.SkipWithError("cannot create the plain file");
  for (std::uint64_t off = 0; off < kSpan; off += 4096)
    if (pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(off)) != 4096) return st.SkipWithError("fill failed");
  std::uint64_t off = 0;
  for (auto _ : st) {
    benchmark::DoNotOptimize(pread(fd, buf.data(), buf.size(), static_cast<off_t>(off)));
    off = (off + 4096) % kSpan;
  }
  ::close(fd);
  fs::remove(p, ec);
}

// ---- Rio Vista: one transaction changing `size` bytes, rotating over 64 KiB of one object -----
constexpr std::size_t kTxSpan = 64 << 10;

void heap_tx(benchmark::State& st, Where w, std::size_t size) {
  rio::HeapOptions o;
  o.path = w.dir / fmt::format("tx{}.heap", size);
  o.size = 4 << 20;
  o.log_size = 64 << 10;
  std::error_code ec;
  fs::remove(o.path, ec);
  auto h = rio::Heap::open(o);
  if (!h) return st.SkipWithError(h.error().detail.c_str());
  rio::Heap& heap = **h;
  {
    auto tx = heap.begin();
    auto a = tx->alloc(kTxSpan);
    if (!a || !tx->set_root(a->off) || !tx->commit()) return st.SkipWithError("heap setup failed");
  }
  const std::byte* obj = heap.at(heap.root());
  std::vector<std::byte> src(size, std::byte{0x5a});
  std::size_t off = 0;
  for (auto _ : st) {
    auto tx = heap.begin();
    auto d = tx->declare(obj + off, size);
    if (!d) return st.SkipWithError(d.error().detail.c_str());
    std::memcpy(*d, src.data(), size);
    if (!tx->commit()) return st.SkipWithError("commit failed");
    off = (off + size) % kTxSpan;
  }
  h->reset();
  fs::remove(o.path, ec);
}

#ifdef WARD_HAVE_PMEMOBJ
// The same transaction through PMDK: pool file in the same tmpfs directory.
void pmemobj_tx(benchmark::State& st, Where w, std::size_t size) {
  const fs::path p = w.dir / fmt::format("tx{}.pmemobj", size);
  std::error_code ec;
  fs::remove(p, ec);
  PMEMobjpool* pop = pmemobj_create(p.c_str(), "ward-bench", 64 << 20, 0600);
  if (!pop) return st.SkipWithError(pmemobj_errormsg());
  const PMEMoid root = pmemobj_root(pop, kTxSpan);
  auto* obj = static_cast<std::byte*>(pmemobj_direct(root));
  std::vector<std::byte> src(size, std::byte{0x5a});
  std::size_t off = 0;
  bool ok = obj != nullptr;
  for (auto _ : st) {
    if (!ok || pmemobj_tx_begin(pop, nullptr, TX_PARAM_NONE) != 0) {
      ok = false;
      break;
    }
    if (pmemobj_tx_add_range(root, off, size) != 0) {
      ok = false;
      pmemobj_tx_end();
      break;
    }
    std::memcpy(obj + off, src.data(), size);
    pmemobj_tx_commit();
    pmemobj_tx_end();
    off = (off + size) % kTxSpan;
  }
  if (!ok) st.SkipWithError(pmemobj_errormsg());
  pmemobj_close(pop);
  fs::remove(p, ec);
}
#endif

// The floor: the same bytes stored into a shared mapping of a tmpfs file, no transaction.
void memcpy_floor(benchmark::State& st, Where w, std::size_t size) {
  const fs::path p = w.dir / fmt::format("floor{}.dat", size);
  std::error_code ec;
  const int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 || ftruncate(fd, kTxSpan) != 0) return st.SkipWithError("cannot create the floor's file");
  void* m = mmap(nullptr, kTxSpan, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) return st.SkipWithError("cannot map the floor's file");
  auto* obj = static_cast<std::byte*>(m);
  std::vector<std::byte> src(size, std::byte{0x5a});
  std::size_t off = 0;
  for (auto _ : st) {
    std::memcpy(obj + off, src.data(), size);
    benchmark::ClobberMemory();
    off = (off + size) % kTxSpan;
  }
  munmap(m, kTxSpan);
  fs::remove(p, ec);
}

void register_heap(const Where& w) {
  for (std::size_t size : {std::size_t{64}, std::size_t{4096}}) {
    const std::string sz = size == 64 ? "64" : "4k";
    benchmark::RegisterBenchmark(fmt::format("heap/{}/tx{}", w.name, sz).c_str(), [w, size](benchmark::State& s) { heap_tx(s, w, size); })
        ->UseRealTime();
#ifdef WARD_HAVE_PMEMOBJ
    benchmark::RegisterBenchmark(fmt::format("pmemobj/{}/tx{}", w.name, sz).c_str(),
                                 [w, size](benchmark::State& s) { pmemobj_tx(s, w, size); })
        ->UseRealTime();
#endif
    benchmark::RegisterBenchmark(fmt::format("memcpy/{}/{}", w.name, sz).c_str(), [w, size](benchmark::State& s) { memcpy_floor(s, w, size); })
        ->UseRealTime();
  }
}

void heap_rows(const Where& w, bench::Table& table) {
  const std::string n = w.name;
  for (const char* sz : {"64", "4k"}) {
    const std::string floor = "memcpy/" + n + "/" + sz, heap = "heap/" + n + "/tx" + sz, pmem = "pmemobj/" + n + "/tx" + sz;
    table.add(floor, std::nullopt, "floor: the bytes alone, stored into a mapped tmpfs file");
    table.add(heap, floor, std::string("rio::Heap: begin, declare (undo copy), store, commit") + (sz[0] == '6' ? "; target <= 1 us" : ""));
#ifdef WARD_HAVE_PMEMOBJ
    table.add(pmem, floor, "libpmemobj: tx_begin, tx_add_range, store, tx_commit, tx_end (same tmpfs)");
    table.add(heap, pmem, "rio::Heap / libpmemobj; target < 1");
#endif
  }
#ifndef WARD_HAVE_PMEMOBJ
  fmt::print(stderr, "no pmemobj rows: built without libpmemobj (scripts/setup.sh installs libpmemobj-dev)\n");
#endif
}

// The plain ways to put 4 KiB into a file, without the cache: what each costs is the other side
// of what each survives (docs/rio.md's guarantee table). The file is preallocated and filled, so
// every row overwrites pages that exist.
enum class Plain { pwrite, pwrite_fdatasync, mmap_store, mmap_msync };

void write_plain(benchmark::State& st, Where w, Plain how) {
  static int n = 0;
  const fs::path p = w.dir / fmt::format("plain-w{}-{}.dat", getpid(), n++);
  const int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return st.SkipWithError("cannot create the plain file");
  struct Done {
    int fd;
    fs::path p;
    void* m = MAP_FAILED;
    ~Done() {
      if (m != MAP_FAILED) munmap(m, kSpan);
      ::close(fd);
      std::error_code ec;
      fs::remove(p, ec);
    }
  } done{fd, p};
  std::vector<std::byte> buf(4096, std::byte{0x5a});
  for (std::uint64_t off = 0; off < kSpan; off += buf.size())
    if (pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(off)) != 4096) return st.SkipWithError("fill failed");
  if (fdatasync(fd) != 0) return st.SkipWithError("fdatasync failed");
  auto* base = static_cast<std::byte*>(MAP_FAILED);
  if (how == Plain::mmap_store || how == Plain::mmap_msync) {
    done.m = mmap(nullptr, kSpan, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (done.m == MAP_FAILED) return st.SkipWithError("mmap failed");
    base = static_cast<std::byte*>(done.m);
  }
  std::uint64_t off = 0;
  for (auto _ : st) {
    switch (how) {
      case Plain::pwrite:
        if (pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(off)) != 4096) return st.SkipWithError("pwrite failed");
        break;
      case Plain::pwrite_fdatasync:
        if (pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(off)) != 4096 || fdatasync(fd) != 0)
          return st.SkipWithError("pwrite/fdatasync failed");
        break;
      case Plain::mmap_store:
        std::memcpy(base + off, buf.data(), buf.size());
        benchmark::ClobberMemory();
        break;
      case Plain::mmap_msync:
        std::memcpy(base + off, buf.data(), buf.size());
        if (msync(base + off, buf.size(), MS_SYNC) != 0) return st.SkipWithError("msync failed");
        break;
    }
    off = (off + buf.size()) % kSpan;
  }
}

// ---- Write stalls -------------------------------------------------------------------------------
// Not Google Benchmark loops: what matters is the distribution of single write latencies and the
// age of dirty data over time, measured directly with the clock.

using Clock = std::chrono::steady_clock;

struct StallCache {
  fs::path dir, region;
  std::unique_ptr<rio::Cache> cache;
  std::string error;
  // `synced`: the region is a file on the disk beside the backing directory, Durability::synced
  // (a full cache then needs durability points before it can reuse a slot).
  StallCache(const fs::path& parent, const std::string& name, std::chrono::milliseconds age, bool synced = false) {
    dir = parent / fmt::format("{}-{}", name, getpid());
    region = synced ? parent / fmt::format("stall-{}-{}.rio", name, getpid())
                    : g_region_dir / fmt::format("stall-{}.rio", name);  // the run's private tmpfs dir
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::remove(region, ec);
    fs::create_directories(dir, ec);
    rio::CacheOptions o;
    o.backing_dir = dir;
    o.region.path = region;
    o.region.size = 64ull << 20;
    o.region.durability = synced ? rio::Durability::synced : rio::Durability::program_crash;
    o.writeback_age = age;
    auto c = rio::Cache::open(o);
    if (!c) error = c.error().detail;
    else cache = std::move(*c);
  }
  ~StallCache() {
    cache.reset();
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::remove(region, ec);
  }
};

struct Latencies {
  std::vector<std::uint32_t> ns;  // one per write, after the warm-up
  double seconds = 0;
  std::uint64_t writes = 0, written_back = 0, waits = 0;
  std::string error;
};

// `writers` threads, each writing whole 4 KiB blocks at random block offsets of its own file until
// `dur` is over; together the files hold `factor` x the cache's blocks. Latencies are kept once
// the writers have written as many blocks as the cache holds (the cache is full from then on).
// `busy`: one more thread, for as long as the writers run, `pwrite`s 4 KiB blocks into a file of
// its own beside the backing files, without pause: the work write-back does when the writers
// outrun it, without the cache. A floor for the writers' latency when the CPUs are shared by that
// many busy threads.
Latencies stall_run(const fs::path& parent, const std::string& name, int writers, double factor, Clock::duration dur,
                    bool synced = false, bool busy = false) {
  Latencies out;
  StallCache sc(parent, name, std::chrono::seconds(30), synced);
  if (!sc.cache) {
    out.error = sc.error;
    return out;
  }
  const std::uint64_t cache_blocks = sc.cache->region()->nblocks();
  const auto per_file = static_cast<std::uint64_t>(static_cast<double>(cache_blocks) * factor / writers);
  std::atomic<std::uint64_t> total{0};
  std::vector<Latencies> per(static_cast<std::size_t>(writers));
  const std::uint64_t wb0 = sc.cache->stats().written_back;
  const auto start = Clock::now();
  std::atomic<bool> writers_done{false};
  std::string busy_error;
  std::thread busy_thread;
  if (busy)
    busy_thread = std::thread([&] {
      pthread_setname_np(pthread_self(), "busy");
      const fs::path p = sc.dir / "busy.dat";
      const int fd = ::open(p.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
      if (fd < 0) {
        busy_error = fmt::format("open {}: {}", p.string(), std::strerror(errno));
        return;
      }
      std::vector<char> block(4096, 'b');
      const auto blocks = static_cast<std::uint64_t>(static_cast<double>(cache_blocks) * factor);
      for (std::uint64_t i = 0; !writers_done.load(std::memory_order_relaxed); ++i)
        if (::pwrite(fd, block.data(), block.size(), static_cast<off_t>(i % blocks * 4096)) != 4096) {
          busy_error = fmt::format("pwrite {}: {}", p.string(), std::strerror(errno));
          break;
        }
      ::close(fd);
    });
  std::vector<std::thread> ts;
  for (int t = 0; t < writers; ++t) {
    ts.emplace_back([&, t] {
      Latencies& me = per[static_cast<std::size_t>(t)];
      pthread_setname_np(pthread_self(), fmt::format("writer{}", t).c_str());  // for perf sched
      me.ns.reserve(8u << 20);
      auto fd = sc.cache->open_file(fmt::format("w{}.dat", t));
      if (!fd) {
        me.error = fd.error().detail;
        return;
      }
      std::mt19937_64 rng(static_cast<std::uint64_t>(t) + 1);
      std::vector<std::byte> buf(4096, std::byte{static_cast<unsigned char>('a' + t)});
      while (true) {
        const std::uint64_t off = rng() % per_file * 4096;
        const auto a = Clock::now();
        if (a - start > dur) break;
        auto r = sc.cache->write(*fd, buf, off);
        const auto b = Clock::now();
        if (!r) {
          me.error = r.error().detail;
          return;
        }
        if (total.fetch_add(1, std::memory_order_relaxed) >= cache_blocks && me.ns.size() < me.ns.capacity())
          me.ns.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(
              std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count(), 0xffffffffll)));
      }
    });
  }
  for (auto& th : ts) th.join();
  writers_done = true;
  if (busy_thread.joinable()) busy_thread.join();
  if (!busy_error.empty()) out.error = busy_error;
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  out.writes = total.load();
  out.written_back = sc.cache->stats().written_back - wb0;
  out.waits = sc.cache->stats().slot_waits;
  for (auto& p : per) {
    if (!p.error.empty()) out.error = p.error;
    out.ns.insert(out.ns.end(), p.ns.begin(), p.ns.end());
  }
  std::sort(out.ns.begin(), out.ns.end());
  return out;
}

double percentile(const std::vector<std::uint32_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, static_cast<std::size_t>(q * static_cast<double>(sorted.size())))];
}

struct AgeRun {
  double max_ms = 0, p99_ms = 0;  // over the samples
  std::size_t samples = 0;
  std::uint64_t written_back = 0;
  std::string error;
};

// One busy writer rewriting 512 blocks (2 MiB: no capacity pressure, only age write-back cleans;
// small enough that the disk can write all of it back once per `age`) with writeback_age = `age`; a sampler thread measures, every ~2 ms, how
// long the oldest acknowledged write not yet in the backing file has been waiting. Measured from
// outside the cache: every block carries (block, write count); the writer records when each
// count was written; the sampler reads the backing file through a shared mapping (the page
// cache: a block counts as written back once its pwrite happened).
AgeRun age_run(const fs::path& parent, std::chrono::milliseconds age, Clock::duration dur) {
  AgeRun out;
  StallCache sc(parent, "age", age);
  if (!sc.cache) {
    out.error = sc.error;
    return out;
  }
  const std::uint64_t nblk = 512;
  auto fd = sc.cache->open_file("age.dat");
  if (!fd) {
    out.error = fd.error().detail;
    return out;
  }
  // Write every block once and flush, so the backing file has its full size to map.
  std::vector<std::byte> buf(4096);
  for (std::uint64_t b = 0; b < nblk; ++b) {
    const std::uint64_t hdr[2] = {b, 0};
    std::memcpy(buf.data(), hdr, sizeof hdr);
    if (!sc.cache->write(*fd, buf, b * 4096)) {
      out.error = "fill failed";
      return out;
    }
  }
  if (auto f = sc.cache->flush(); !f) {
    out.error = f.error().detail;
    return out;
  }
  const int raw = ::open((sc.dir / "age.dat").c_str(), O_RDONLY | O_CLOEXEC);
  void* map = raw < 0 ? MAP_FAILED : mmap(nullptr, nblk * 4096, PROT_READ, MAP_SHARED, raw, 0);
  if (raw >= 0) ::close(raw);
  if (map == MAP_FAILED) {
    out.error = "cannot map the backing file";
    return out;
  }
  // Per block: the newest count written, and a ring of when recent counts were written.
  constexpr std::uint64_t kRing = 8192;  // ~3 s of rewrites of one block: the age stays exact
  std::vector<std::atomic<std::uint64_t>> last(nblk);
  std::vector<std::atomic<std::int64_t>> when(nblk * kRing);
  const auto t0 = Clock::now();
  auto ns_since = [&](Clock::time_point t) { return std::chrono::duration_cast<std::chrono::nanoseconds>(t - t0).count(); };
  std::atomic<bool> done{false};
  const std::uint64_t wb0 = sc.cache->stats().written_back;
  std::thread writer([&] {
    std::mt19937_64 rng(42);
    while (Clock::now() - t0 < dur) {
      const std::uint64_t b = rng() % nblk;
      const std::uint64_t c = last[b].load(std::memory_order_relaxed) + 1;
      // Recorded before the write starts: the age measured is never less than the truth.
      when[b * kRing + c % kRing].store(ns_since(Clock::now()), std::memory_order_relaxed);
      const std::uint64_t hdr[2] = {b, c};
      std::memcpy(buf.data(), hdr, sizeof hdr);
      if (auto r = sc.cache->write(*fd, buf, b * 4096); !r) {
        out.error = r.error().detail;
        break;
      }
      last[b].store(c, std::memory_order_release);
    }
    done = true;
  });
  std::vector<double> ages;
  const auto* disk = static_cast<const volatile std::uint64_t*>(map);
  while (!done) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const std::int64_t now = ns_since(Clock::now());
    std::int64_t oldest = 0;
    for (std::uint64_t b = 0; b < nblk; ++b) {
      const std::uint64_t have = last[b].load(std::memory_order_acquire);
      const std::uint64_t on_disk = disk[b * 512 + 1];
      if (on_disk >= have) continue;
      // The first acknowledged write not on disk is count on_disk + 1; if the ring no longer
      // holds it, its oldest entry is a lower bound.
      const std::uint64_t first = have - on_disk >= kRing ? have - kRing + 1 : on_disk + 1;
      oldest = std::max(oldest, now - when[b * kRing + first % kRing].load(std::memory_order_relaxed));
    }
    ages.push_back(static_cast<double>(oldest) / 1e6);
  }
  writer.join();
  munmap(map, nblk * 4096);
  out.written_back = sc.cache->stats().written_back - wb0;
  std::sort(ages.begin(), ages.end());
  out.samples = ages.size();
  if (!ages.empty()) {
    out.max_ms = ages.back();
    out.p99_ms = ages[std::min(ages.size() - 1, ages.size() * 99 / 100)];
  }
  return out;
}

// The rows: latency percentiles of the oversubscribed run beside the same writes into a cache
// that never has to evict (the floor), and the oldest dirty age beside the configured age.
std::vector<bench::Row> stall_rows(const fs::path& disk_dir, const std::regex& filter) {
  std::vector<bench::Row> rows;
  const auto dur = std::chrono::seconds(3);
  // Latency percentiles of the 4x run beside the same writes into a cache their data fits.
  auto latency_rows = [&](const std::string& suffix, bool synced) {
    const std::string a = "stalls/disk/write4k_2thr_4x" + suffix, f = "stalls/disk/write4k_2thr_fits" + suffix,
                      fb = "stalls/disk/write4k_2thr_fits_busy" + suffix;
    if (!std::regex_search(a, filter)) return;
    const Latencies over = stall_run(disk_dir, "stall4x" + suffix, 2, 4.0, dur, synced);
    const Latencies fits = stall_run(disk_dir, "stallfit" + suffix, 2, 0.5, dur, synced);
    const Latencies busy = stall_run(disk_dir, "stallbusy" + suffix, 2, 0.5, dur, synced, true);
    if (!over.error.empty()) fmt::print(stderr, "stalls (4x{}): {}\n", suffix, over.error);
    if (!fits.error.empty()) fmt::print(stderr, "stalls (fits{}): {}\n", suffix, fits.error);
    if (!busy.error.empty()) fmt::print(stderr, "stalls (fits, busy{}): {}\n", suffix, busy.error);
    // Run `l`'s percentile q beside run `fl`'s (named `floor`).
    auto add = [&](const std::string& name, const Latencies& l, const std::string& floor, const Latencies& fl,
                   const std::string& q, double qv, const std::string& note) {
      bench::Row r;
      r.name = name + "/" + q;
      r.value = percentile(l.ns, qv) / 1e3;
      r.unit = "us";
      r.floor = floor + "/" + q;
      const double f_us = percentile(fl.ns, qv) / 1e3;
      if (f_us > 0) r.ratio = r.value / f_us;
      r.note = fmt::format("{}floor {:.2f} us", note, f_us);
      rows.push_back(r);
    };
    add(a, over, f, fits, "p50", 0.50, "");
    add(a, over, f, fits, "p99", 0.99, "");
    add(a, over, f, fits, "p99.9", 0.999, "target <= 20 us; ");
    add(a, over, f, fits, "max", 1.0, "");
    // The second floor: the writers' latency when a third thread keeps a CPU busy, as write-back
    // must whenever the writers outrun it; the 4x run beside it.
    const auto busy_slow = busy.ns.end() - std::upper_bound(busy.ns.begin(), busy.ns.end(), 1000000u);
    for (auto [q, qv] : {std::pair{"p99", 0.99}, std::pair{"p99.9", 0.999}}) {
      add(fb, busy, f, fits, q, qv,
          fmt::format("the floor's writes with a third thread pwriting without pause (write-back's work); {} CPUs; "
                      "{} > 1 ms of {} kept, {:.0f}/s; ",
                      bench::usable_cpus(), busy_slow, busy.ns.size(),
                      busy.seconds > 0 ? static_cast<double>(busy.writes) / busy.seconds : 0));
      add(a, over, fb, busy, q, qv, "against the floor with a busy third thread; ");
    }
    bench::Row tp;
    tp.name = a + "/writes_per_s";
    tp.value = over.seconds > 0 ? static_cast<double>(over.writes) / over.seconds : 0;
    tp.unit = "/s";
    const auto slower = [](const Latencies& l, std::uint32_t ns) {
      return l.ns.end() - std::upper_bound(l.ns.begin(), l.ns.end(), ns);
    };
    // Writes slower than 1 ms that did not wait for write-back are the machine's scheduling noise:
    // the floor run shows how many of those it sees in the same time.
    tp.note = fmt::format("{} writes, {} latencies kept ({} > 100 us, {} > 1 ms), {} waited for write-back, {} blocks written "
                          "back; fits: {} > 1 ms, {:.0f}/s{}",
                          over.writes, over.ns.size(), slower(over, 100000), slower(over, 1000000), over.waits,
                          over.written_back, slower(fits, 1000000), fits.seconds > 0 ? static_cast<double>(fits.writes) / fits.seconds : 0,
                          synced ? "; region file on the disk, Durability::synced (no fsync by the writers: durability points "
                                   "only where eviction needs them)" : "");
    rows.push_back(tp);
  };
  latency_rows("", false);
  latency_rows("_synced", true);
  if (!std::regex_search("stalls/disk/oldest_dirty_age50ms", filter)) return rows;
  const auto age = std::chrono::milliseconds(50);
  const AgeRun ar = age_run(disk_dir, age, dur);
  if (!ar.error.empty()) fmt::print(stderr, "stalls (age): {}\n", ar.error);
  for (auto [q, v] : {std::pair{"max", ar.max_ms}, std::pair{"p99", ar.p99_ms}}) {
    bench::Row r;
    r.name = fmt::format("stalls/disk/oldest_dirty_age50ms/{}", q);
    r.value = v;
    r.unit = "ms";
    r.floor = "writeback_age 50 ms";
    r.ratio = v / 50.0;
    r.note = fmt::format("target <= 2x; {} samples, {} blocks written back in 3 s", ar.samples, ar.written_back);
    rows.push_back(r);
  }
  return rows;
}

std::string prot_name(rio::Protection p) { return std::string(rio::to_string(p)); }

int run(bench::Options opt, const fs::path& disk_dir) {
  std::error_code ec;
  fs::create_directories(disk_dir, ec);
  // tmpfs is shared: private directories, created exclusively.
  auto shm = rio::make_private_dir("/dev/shm", "ward-bench-rio");
  auto regions = rio::make_private_dir("/dev/shm", "ward-bench-regions");
  if (!shm || !regions) {
    fmt::print(stderr, "ward bench rio: {}\n", (shm ? regions : shm).error().detail);
    return 1;
  }
  const fs::path tmp_dir = *shm;
  g_region_dir = *regions;
  const std::vector<Where> wheres = {{"disk", disk_dir}, {"tmpfs", tmp_dir}};
  const std::vector<rio::Protection> prots = {rio::Protection::off, rio::Protection::mprotect, rio::Protection::alias};
  for (const Where& w : wheres) {
    for (auto p : prots)
      benchmark::RegisterBenchmark(fmt::format("rio/{}/write4k_fsync/{}", w.name, prot_name(p)).c_str(),
                                   [w, p](benchmark::State& s) { write_fsync(s, w, rio::Mode::rio, p, 4096); })
          ->UseRealTime();
    benchmark::RegisterBenchmark(fmt::format("write_through/{}/write4k_fsync", w.name).c_str(),
                                 [w](benchmark::State& s) { write_fsync(s, w, rio::Mode::write_through, rio::Protection::off, 4096); })
        ->UseRealTime();
    benchmark::RegisterBenchmark(fmt::format("unsafe/{}/write4k_fsync", w.name).c_str(), [w](benchmark::State& s) {
      write_fsync(s, w, rio::Mode::unsafe_write_back, rio::Protection::off, 4096);
    })->UseRealTime();
    if (w.name == "disk") {
      benchmark::RegisterBenchmark("rio/disk/write4k_fsync/synced_region", [w](benchmark::State& s) {
        write_fsync(s, w, rio::Mode::rio, rio::kDefaultProtection, 4096, true);
      })->UseRealTime();
      // The same in a region 8x larger: fsync flushes what changed, so the cost must not grow.
      benchmark::RegisterBenchmark("rio/disk/write4k_fsync/synced_region_512m", [w](benchmark::State& s) {
        write_fsync(s, w, rio::Mode::rio, rio::kDefaultProtection, 4096, true, 512ull << 20);
      })->UseRealTime();
    }
    for (std::size_t size : {std::size_t{64} << 10, std::size_t{1} << 20}) {
      const std::string sz = size == (64u << 10) ? "64k" : "1m";
      benchmark::RegisterBenchmark(fmt::format("rio/{}/write{}_fsync", w.name, sz).c_str(), [w, size](benchmark::State& s) {
        write_fsync(s, w, rio::Mode::rio, rio::kDefaultProtection, size);
      })->UseRealTime();
      benchmark::RegisterBenchmark(fmt::format("write_through/{}/write{}_fsync", w.name, sz).c_str(), [w, size](benchmark::State& s) {
        write_fsync(s, w, rio::Mode::write_through, rio::Protection::off, size);
      })->UseRealTime();
    }
    benchmark::RegisterBenchmark(fmt::format("rio/{}/read4k_cached", w.name).c_str(), [w](benchmark::State& s) { read_cached(s, w); })
        ->UseRealTime();
    benchmark::RegisterBenchmark(fmt::format("plain/{}/pread4k", w.name).c_str(), [w](benchmark::State& s) { read_plain(s, w); })
        ->UseRealTime();
    for (auto [how, what] : {std::pair{Plain::pwrite, "pwrite4k"}, std::pair{Plain::pwrite_fdatasync, "pwrite4k_fdatasync"},
                             std::pair{Plain::mmap_store, "mmap_store4k"}, std::pair{Plain::mmap_msync, "mmap_store4k_msync"}})
      benchmark::RegisterBenchmark(fmt::format("plain/{}/{}", w.name, what).c_str(), [w, how](benchmark::State& s) {
        write_plain(s, w, how);
      })->UseRealTime();
  }
  register_heap(wheres[1]);
  const bench::Measured m = bench::run_registered(opt);
  bench::Table table(m);
  const std::string def = prot_name(rio::kDefaultProtection);
  for (const Where& w : wheres) {
    const std::string n = w.name;
    table.add("write_through/" + n + "/write4k_fsync", std::nullopt, "pwrite + fdatasync: the baseline Rio beat");
    table.add("unsafe/" + n + "/write4k_fsync", "write_through/" + n + "/write4k_fsync", "pwrite, no sync: no guarantee");
    table.add("rio/" + n + "/write4k_fsync/" + def, "write_through/" + n + "/write4k_fsync",
        n == "disk" ? "rio, default protection; target <= 0.05x (20x faster)" : "rio, default protection");
    for (auto p : prots)
      table.add("rio/" + n + "/write4k_fsync/" + prot_name(p), "rio/" + n + "/write4k_fsync/off",
          p == rio::kDefaultProtection ? "protection cost; default mode, target <= 1.10x" : "protection cost");
    for (const char* sz : {"64k", "1m"})
      table.add("rio/" + n + "/write" + sz + "_fsync", "write_through/" + n + "/write" + sz + "_fsync", "");
    table.add("rio/" + n + "/read4k_cached", "plain/" + n + "/pread4k", "sequential 4 KiB reads of cached data vs pread");
    // The guarantee table's costs (docs/rio.md): each plain way beside Rio's acknowledged write.
    table.add("plain/" + n + "/pwrite4k", std::nullopt, "page cache: survives a process crash only");
    table.add("plain/" + n + "/mmap_store4k", "plain/" + n + "/pwrite4k", "MAP_SHARED store: survives a process crash only");
    const std::string sync_note = n == "disk" ? "survives power loss" : "tmpfs has no disk: the sync buys nothing";
    table.add("plain/" + n + "/pwrite4k_fdatasync", "plain/" + n + "/pwrite4k", sync_note);
    table.add("plain/" + n + "/mmap_store4k_msync", "plain/" + n + "/pwrite4k", sync_note);
    if (n == "disk")
      table.add("rio/disk/write4k_fsync/synced_region", "plain/disk/pwrite4k_fdatasync",
          "64 MiB region file on disk, Durability::synced: fsync msyncs what changed; survives power loss");
    if (n == "disk")
      table.add("rio/disk/write4k_fsync/synced_region_512m", "rio/disk/write4k_fsync/synced_region",
          "the same in a 512 MiB region: the flush covers what changed, not the region (target ~1x)");
    table.add("rio/" + n + "/write4k_fsync/" + def, "plain/" + n + "/pwrite4k", "rio write+fsync vs the page cache it matches on tmpfs");
  }
  heap_rows(wheres[1], table);
  auto st = stall_rows(disk_dir, std::regex(opt.filter));
  for (auto& r : st) table.add(std::move(r));
  auto& rows = table.rows();
  bench::print(rows, opt.json);
  for (const auto& [name, why] : m.skipped) fmt::print(stderr, "skipped {}: {}\n", name, why);
  fs::remove_all(tmp_dir, ec);
  fs::remove_all(g_region_dir, ec);
  fs::remove_all(disk_dir, ec);
  return rows.empty() ? 1 : 0;
}

}  // namespace

void add_bench_rio(CLI::App& bench, int& exit_code) {
  auto opt = std::make_shared<bench::Options>();
  opt->repetitions = 3;
  auto dir = std::make_shared<std::string>((fs::current_path() / ".ward-bench-rio").string());
  auto* c = bench.add_subcommand("rio", "The Rio cache vs write-through and unsafe write-back, on disk and on tmpfs");
  bench::add_common_options(*c, *opt);
  c->add_option("--dir", *dir, "Directory on the disk-backed file system to use (removed after)")->capture_default_str();
  c->callback([opt, dir, &exit_code] { exit_code = run(*opt, *dir); });
}

}  // namespace ward::cli
