// `ward bench rio`: the Rio cache beside its baselines, on a disk-backed file system (under the
// work directory) and on tmpfs, in one run: 4 KiB write+fsync in rio mode (each protection mode)
// vs write-through vs unsafe write-back; 64 KiB and 1 MiB writes; sequential reads of cached data
// vs plain reads; and the plain system calls Rio is an alternative to (4 KiB pwrite with no sync,
// pwrite+fdatasync, a store into a MAP_SHARED mapping with and without msync), for
// docs/rio.md's guarantee table.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "commands.h"
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
  Setup(const Where& w, rio::Mode mode, rio::Protection prot, benchmark::State& st, bool synced = false) {
    static int n = 0;
    dir = w.dir / fmt::format("b{}-{}", getpid(), n++);
    region = (synced ? w.dir : g_region_dir) / fmt::format("r{}.rio", n);
    std::error_code ec;
    fs::create_directories(dir, ec);
    rio::CacheOptions o;
    o.backing_dir = dir;
    o.region.path = region;
    o.region.size = 64ull << 20;
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

void write_fsync(benchmark::State& st, Where w, rio::Mode mode, rio::Protection prot, std::size_t size, bool synced = false) {
  Setup s(w, mode, prot, st, synced);
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

template <class Add>
void heap_rows(const Where& w, Add&& add) {
  const std::string n = w.name;
  for (const char* sz : {"64", "4k"}) {
    const std::string floor = "memcpy/" + n + "/" + sz, heap = "heap/" + n + "/tx" + sz, pmem = "pmemobj/" + n + "/tx" + sz;
    add(floor, std::nullopt, "floor: the bytes alone, stored into a mapped tmpfs file");
    add(heap, floor, std::string("rio::Heap: begin, declare (undo copy), store, commit") + (sz[0] == '6' ? "; target <= 1 us" : ""));
#ifdef WARD_HAVE_PMEMOBJ
    add(pmem, floor, "libpmemobj: tx_begin, tx_add_range, store, tx_commit, tx_end (same tmpfs)");
    add(heap, pmem, "rio::Heap / libpmemobj; target < 1");
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
    if (w.name == "disk")
      benchmark::RegisterBenchmark("rio/disk/write4k_fsync/synced_region", [w](benchmark::State& s) {
        write_fsync(s, w, rio::Mode::rio, rio::kDefaultProtection, 4096, true);
      })->UseRealTime();
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
  auto& rows = table.rows();
  auto add = [&table](auto&&... a) { table.add(std::forward<decltype(a)>(a)...); };
  const std::string def = prot_name(rio::kDefaultProtection);
  for (const Where& w : wheres) {
    const std::string n = w.name;
    add("write_through/" + n + "/write4k_fsync", std::nullopt, "pwrite + fdatasync: the baseline Rio beat");
    add("unsafe/" + n + "/write4k_fsync", "write_through/" + n + "/write4k_fsync", "pwrite, no sync: no guarantee");
    add("rio/" + n + "/write4k_fsync/" + def, "write_through/" + n + "/write4k_fsync",
        n == "disk" ? "rio, default protection; target <= 0.05x (20x faster)" : "rio, default protection");
    for (auto p : prots)
      add("rio/" + n + "/write4k_fsync/" + prot_name(p), "rio/" + n + "/write4k_fsync/off",
          p == rio::kDefaultProtection ? "protection cost; default mode, target <= 1.10x" : "protection cost");
    for (const char* sz : {"64k", "1m"})
      add("rio/" + n + "/write" + sz + "_fsync", "write_through/" + n + "/write" + sz + "_fsync", "");
    add("rio/" + n + "/read4k_cached", "plain/" + n + "/pread4k", "sequential 4 KiB reads of cached data vs pread");
    // The guarantee table's costs (docs/rio.md): each plain way beside Rio's acknowledged write.
    add("plain/" + n + "/pwrite4k", std::nullopt, "page cache: survives a process crash only");
    add("plain/" + n + "/mmap_store4k", "plain/" + n + "/pwrite4k", "MAP_SHARED store: survives a process crash only");
    const std::string sync_note = n == "disk" ? "survives power loss" : "tmpfs has no disk: the sync buys nothing";
    add("plain/" + n + "/pwrite4k_fdatasync", "plain/" + n + "/pwrite4k", sync_note);
    add("plain/" + n + "/mmap_store4k_msync", "plain/" + n + "/pwrite4k", sync_note);
    if (n == "disk")
      add("rio/disk/write4k_fsync/synced_region", "plain/disk/pwrite4k_fdatasync",
          "64 MiB region file on disk, Durability::synced: fsync msyncs the region; survives power loss");
    add("rio/" + n + "/write4k_fsync/" + def, "plain/" + n + "/pwrite4k", "rio write+fsync vs the page cache it matches on tmpfs");
  }
  heap_rows(wheres[1], add);
  bench::print(rows, opt.json);
  for (const auto& [name, why] : m.skipped) fmt::print(stderr, "skipped {}: {}\n", name, why);
  fs::remove_all(tmp_dir, ec);
  fs::remove_all(g_region_dir, ec);
  fs::remove_all(disk_dir, ec);
  return m.ns.empty() ? 1 : 0;
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
