// `ward bench lib`: real C libraries of free functions through a domain, beside the same
// functions called directly in this process (their floor). Small calls show the fixed cost of a
// crossing; large ones (64 KiB) show what marshaling adds to real work (issue 10's target:
// large calls within 1.3x of direct).
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <sys/mman.h>
#include <fmt/format.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "callback_lib.h"
#include "commands.h"
#include "floors.h"
#include "libraries.h"
#include "paths.h"
#include "report.h"

// The callback library's free functions: cb_each(n, visit, ud) calls visit(ud, i) n times.
WARD_CALLBACK(cb_visit_fn, ward::user_data(0));
WARD_LIBRARY(bench_callbacks, (cb_each, ward::callback(1, 2)));

namespace ward::cli {
namespace {

constexpr std::size_t k64 = 64;
constexpr std::size_t k64K = 64 * 1024;

// Text that compresses like text (zstd's speed depends on the data).
std::vector<char> sample_text(std::size_t n) {
  std::vector<char> v;
  v.reserve(n);
  unsigned x = 12345;
  while (v.size() < n) {
    x = x * 1103515245u + 12345u;
    const std::string word = "word" + std::to_string((x >> 16) % 500) + ' ';
    for (char c : word)
      if (v.size() < n) v.push_back(c);
  }
  return v;
}

template <class Api>
std::optional<Instance<Api>> open_lib(const std::string& path, benchmark::State& st) {
  auto lib = Instance<Api>::open(path);
  if (!lib) {
    st.SkipWithError(lib.error().message().c_str());
    return std::nullopt;
  }
  return std::move(*lib);
}

// The freefns library loaded into this process, for the floors.
using sum_fn = decltype(&freefns_sum);
sum_fn direct_sum(benchmark::State& st) {
  static void* lib = dlopen(plugin_path("freefns").c_str(), RTLD_NOW | RTLD_LOCAL);
  auto f = lib ? reinterpret_cast<sum_fn>(dlsym(lib, "freefns_sum")) : nullptr;
  if (!f) st.SkipWithError("dlopen of libfreefns.so failed");
  return f;
}

void sum_through(benchmark::State& st, std::size_t n) {
  auto lib = open_lib<freefns_lib>(plugin_path("freefns"), st);
  if (!lib) return;
  std::vector<unsigned char> data(n, 3);
  for (auto _ : st) {
    auto r = (*lib)->freefns_sum(data.data(), data.size());
    if (!r) return st.SkipWithError(r.error().message().c_str());
    benchmark::DoNotOptimize(r->unverified_value_i_trust_it());
  }
}

void sum_direct(benchmark::State& st, std::size_t n) {
  auto f = direct_sum(st);
  if (!f) return;
  std::vector<unsigned char> data(n, 3);
  for (auto _ : st) {
    benchmark::DoNotOptimize(data.data());
    benchmark::DoNotOptimize(f(data.data(), data.size()));
  }
}

// What any sandbox that copies its inputs pays at least: the copy of the buffer, then the same
// sum, both in this process on one core (ward also moves the copy to another core's cache).
void copy_sum_direct(benchmark::State& st, std::size_t n) {
  auto f = direct_sum(st);
  if (!f) return;
  std::vector<unsigned char> data(n, 3), copy(n);
  for (auto _ : st) {
    std::memcpy(copy.data(), data.data(), n);
    benchmark::DoNotOptimize(copy.data());
    benchmark::DoNotOptimize(f(copy.data(), copy.size()));
  }
}

// The physical floor of the copied call: the same library function in another process on the
// other CPU, the 64 KiB copied into memory shared with it, over the fastest transport there is
// (a spin round trip, no system call): what a process-isolated call with copied input cannot
// beat, whatever its design.
void sum_floor_cross_cpu(benchmark::State& st, std::size_t n) {
  auto f = direct_sum(st);
  if (!f) return;
  void* m = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return st.SkipWithError("mmap failed");
  auto* shared = static_cast<unsigned char*>(m);
  const std::vector<unsigned char> data(n, 3);
  bench::run_spin_cross_cpu(
      st, [&] { std::memcpy(shared, data.data(), n); },
      [&] { benchmark::DoNotOptimize(f(shared, n)); });
  munmap(m, n);
}

void zstd_through(benchmark::State& st) {
  auto z = open_lib<zstd_oneshot>("libzstd.so.1", st);
  if (!z) return;
  const std::vector<char> src = sample_text(k64K);
  std::vector<char> dst(ZSTD_compressBound(src.size()));
  for (auto _ : st) {
    auto r = (*z)->ZSTD_compress(dst.data(), dst.size(), src.data(), src.size(), 1);
    if (!r) return st.SkipWithError(r.error().message().c_str());
    benchmark::DoNotOptimize(r->unverified_value_i_trust_it());
  }
}

void zstd_direct(benchmark::State& st) {
  const std::vector<char> src = sample_text(k64K);
  std::vector<char> dst(ZSTD_compressBound(src.size()));
  for (auto _ : st) benchmark::DoNotOptimize(ZSTD_compress(dst.data(), dst.size(), src.data(), src.size(), 1));
}

// ---- callbacks: one extension -> host round trip per visit ------------------------------------
constexpr int kVisits = 100;
int count_visit(void* ud, int) {
  ++*static_cast<int*>(ud);
  return 0;
}

void callbacks_through(benchmark::State& st) {
  auto lib = open_lib<bench_callbacks>(plugin_path("callback_lib"), st);
  if (!lib) return;
  int seen = 0;
  for (auto _ : st) {
    auto r = (*lib)->cb_each(kVisits, &count_visit, &seen);
    if (!r || r->unverified_value_i_trust_it() != kVisits) return st.SkipWithError("cb_each failed");
  }
}

void callbacks_direct(benchmark::State& st) {
  static void* lib = dlopen(plugin_path("callback_lib").c_str(), RTLD_NOW | RTLD_LOCAL);
  auto each = lib ? reinterpret_cast<decltype(&cb_each)>(dlsym(lib, "cb_each")) : nullptr;
  if (!each) return st.SkipWithError("dlopen of libcallback_lib.so failed");
  int seen = 0;
  for (auto _ : st) benchmark::DoNotOptimize(each(kVisits, &count_visit, &seen));
}

// ---- sandbox memory ------------------------------------------------------------------------------
// 64 KiB the library reads in place (no copy into the frame), beside the same sum in-process.
void sum_64k_sandboxed(benchmark::State& st) {
  auto lib = open_lib<freefns_lib>(plugin_path("freefns"), st);
  if (!lib) return;
  auto data = lib->alloc<unsigned char>(k64K);
  if (!data) return st.SkipWithError(data.error().message().c_str());
  std::fill_n(data->host_ptr(), k64K, 3);
  for (auto _ : st) {
    auto r = (*lib)->freefns_sum(*data, k64K);
    if (!r) return st.SkipWithError(r.error().message().c_str());
    benchmark::DoNotOptimize(r->unverified_value_i_trust_it());
  }
}

// A host read of one element of sandbox memory (a checked, tainted copy) beside a plain read.
void sandbox_read(benchmark::State& st) {
  auto lib = open_lib<freefns_lib>(plugin_path("freefns"), st);
  if (!lib) return;
  auto data = lib->alloc<std::uint64_t>(1024);
  if (!data) return st.SkipWithError(data.error().message().c_str());
  std::size_t i = 0;
  for (auto _ : st) {
    auto v = data->read(i++ & 1023);
    if (!v) return st.SkipWithError(v.error().message().c_str());
    benchmark::DoNotOptimize(v->unverified_value_i_trust_it());
  }
}

void host_read(benchmark::State& st) {
  std::vector<std::uint64_t> data(1024, 5);
  std::size_t i = 0;
  for (auto _ : st) {
    benchmark::DoNotOptimize(data.data());
    benchmark::DoNotOptimize(data[i++ & 1023]);
  }
}

void register_all() {
  benchmark::RegisterBenchmark("direct/sum_64", [](benchmark::State& s) { sum_direct(s, k64); });
  benchmark::RegisterBenchmark("lib/sum_64", [](benchmark::State& s) { sum_through(s, k64); })->UseRealTime();
  benchmark::RegisterBenchmark("direct/sum_64k", [](benchmark::State& s) { sum_direct(s, k64K); });
  benchmark::RegisterBenchmark("lib/sum_64k", [](benchmark::State& s) { sum_through(s, k64K); })->UseRealTime();
  benchmark::RegisterBenchmark("direct/copy_sum_64k", [](benchmark::State& s) { copy_sum_direct(s, k64K); });
  benchmark::RegisterBenchmark("floor/sum_64k_cross_cpu", [](benchmark::State& s) { sum_floor_cross_cpu(s, k64K); })
      ->UseRealTime();
  benchmark::RegisterBenchmark("direct/zstd_compress_64k", zstd_direct);
  benchmark::RegisterBenchmark("lib/zstd_compress_64k", zstd_through)->UseRealTime();
  benchmark::RegisterBenchmark("direct/callback_x100", callbacks_direct);
  benchmark::RegisterBenchmark("lib/callback_x100", callbacks_through)->UseRealTime();
  benchmark::RegisterBenchmark("lib/sum_64k_sandboxed", sum_64k_sandboxed)->UseRealTime();
  benchmark::RegisterBenchmark("host/read_u64", host_read);
  benchmark::RegisterBenchmark("sandbox/read_u64", sandbox_read);
}

int run(const bench::Options& opt) {
  register_all();
  const bench::Measured m = bench::run_registered(opt);
  bench::Table table(m);
  table.add("direct/sum_64", std::nullopt, "64-byte checksum, library called in-process");
  table.add("lib/sum_64", "direct/sum_64", "the same through a domain (crossing cost dominates)");
  table.add("direct/sum_64k", std::nullopt, "64 KiB checksum, in-process");
  table.add("lib/sum_64k", "direct/sum_64k", "64 KiB in-buffer copied into the arena; target <= 1.3x");
  table.add("direct/copy_sum_64k", "direct/sum_64k", "memcpy 64 KiB, then the sum, one core: what the copy alone costs");
  table.add("floor/sum_64k_cross_cpu", "direct/sum_64k", "the sum in a process on the other CPU, 64 KiB copied to it, spin round trip");
  table.add("lib/sum_64k", "floor/sum_64k_cross_cpu", "ward against that physical floor (unpinned, adaptive spin)");
  table.add("direct/zstd_compress_64k", std::nullopt, "Debian's libzstd, level 1, 64 KiB of text, in-process");
  table.add("lib/zstd_compress_64k", "direct/zstd_compress_64k", "the same library unmodified in a domain; target <= 1.3x");
  table.add("lib/sum_64k_sandboxed", "direct/sum_64k", "the 64 KiB already in sandbox memory: passed in place, no copy");
  // A callback round trip: the call's time over its 100 visits (the one outer call amortised).
  auto per_visit = [&](const std::string& name) -> std::optional<double> {
    if (auto it = m.ns.find(name); it != m.ns.end()) return it->second / kVisits;
    return std::nullopt;
  };
  if (auto through = per_visit("lib/callback_x100")) {
    bench::Row r;
    r.name = "lib/callback";
    r.value = *through;
    r.note = "extension -> host callback round trip (100 per call, divided)";
    if (auto direct = per_visit("direct/callback_x100")) {
      r.floor = "direct/callback";
      r.ratio = *through / *direct;
    }
    table.add(std::move(r));
  }
  table.add("host/read_u64", std::nullopt, "a plain read of host memory");
  table.add("sandbox/read_u64", "host/read_u64", "Sandboxed<T>::read: bounds and liveness checked, copied, tainted");
  return table.finish(opt.json);
}

}  // namespace

void add_bench_lib(CLI::App& bench, int& exit_code) {
  bench::add_command(bench, "lib", "Real C libraries through a domain, beside the same calls made directly", run, exit_code);
}

}  // namespace ward::cli
