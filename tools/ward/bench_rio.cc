// `ward bench rio`: the Rio cache beside its baselines, on a disk-backed file system (under the
// work directory) and on tmpfs, in one run: 4 KiB write+fsync in rio mode (each protection mode)
// vs write-through vs unsafe write-back; 64 KiB and 1 MiB writes; sequential reads of cached data
// vs plain reads.
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

// A cache in its own fresh directory; removed (with its region) when done.
struct Setup {
  fs::path dir, region;
  std::unique_ptr<rio::Cache> cache;
  int fd = -1;
  Setup(const Where& w, rio::Mode mode, rio::Protection prot, benchmark::State& st) {
    static int n = 0;
    dir = w.dir / fmt::format("b{}-{}", getpid(), n++);
    region = fs::path("/dev/shm") / fmt::format("ward-bench-{}-{}.rio", getpid(), n);
    std::error_code ec;
    fs::create_directories(dir, ec);
    rio::CacheOptions o;
    o.backing_dir = dir;
    o.region.path = region;
    o.region.size = 64ull << 20;
    o.region.protection = prot;
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

void write_fsync(benchmark::State& st, Where w, rio::Mode mode, rio::Protection prot, std::size_t size) {
  Setup s(w, mode, prot, st);
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

std::string prot_name(rio::Protection p) { return std::string(rio::to_string(p)); }

int run(bench::Options opt, const fs::path& disk_dir) {
  std::error_code ec;
  fs::create_directories(disk_dir, ec);
  const fs::path tmp_dir = fs::path("/dev/shm") / fmt::format("ward-bench-rio-{}", getpid());
  fs::create_directories(tmp_dir, ec);
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
  }
  register_heap(wheres[1]);
  const bench::Measured m = bench::run_registered(opt);
  std::vector<bench::Row> rows;
  auto add = [&](const std::string& name, std::optional<std::string> floor, std::string note = {}) {
    if (auto r = bench::compare(m, name, floor, std::move(note))) rows.push_back(*r);
  };
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
  }
  heap_rows(wheres[1], add);
  bench::print(rows, opt.json);
  for (const auto& [name, why] : m.skipped) fmt::print(stderr, "skipped {}: {}\n", name, why);
  fs::remove_all(tmp_dir, ec);
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
