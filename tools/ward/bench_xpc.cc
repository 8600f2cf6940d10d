// `ward bench xpc`: the cost of crossing into a process domain, beside its physical floors.
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <dlfcn.h>
#include <sched.h>

#include <memory>
#include <optional>

#include "commands.h"
#include "floors.h"
#include "interfaces.h"
#include "paths.h"
#include "report.h"

namespace ward::cli {
namespace {

using namespace std::chrono_literals;

std::uint64_t bench_now() { return 0; }
void bench_log(const char*) {}
constexpr device_host kBenchHost{bench_log, bench_now};

// Pins this thread and the domain's child for the duration of one benchmark run.
class Pin {
 public:
  Pin(pid_t child, int host_cpu, int child_cpu) : child_(child) {
    sched_getaffinity(0, sizeof saved_, &saved_);
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(host_cpu, &s);
    ok_ = sched_setaffinity(0, sizeof s, &s) == 0;
    CPU_ZERO(&s);
    CPU_SET(child_cpu, &s);
    ok_ = ok_ && sched_setaffinity(child, sizeof s, &s) == 0;
  }
  ~Pin() {
    sched_setaffinity(0, sizeof saved_, &saved_);
    sched_setaffinity(child_, sizeof saved_, &saved_);
  }
  bool ok() const { return ok_; }

 private:
  pid_t child_;
  cpu_set_t saved_;
  bool ok_ = false;
};

std::optional<Instance<device_api>> load_device(std::chrono::nanoseconds spin, benchmark::State& st) {
  auto pol = Policy::builder().spin(spin).build();
  auto p = Instance<device_api>::load(plugin_path("device"), "device_entry", *pol);
  if (!p) {
    st.SkipWithError(p.error().message().c_str());
    return std::nullopt;
  }
  if (auto r = p->call<&device_api::init>(&kBenchHost); !r) {
    st.SkipWithError(r.error().message().c_str());
    return std::nullopt;
  }
  return std::move(*p);
}

void null_call(benchmark::State& st, std::chrono::nanoseconds spin, int host_cpu, int child_cpu) {
  auto p = load_device(spin, st);
  if (!p) return;
  std::optional<Pin> pin;
  if (host_cpu >= 0) {
    pin.emplace(ward::pid_of(p->domain()), host_cpu, child_cpu);
    if (!pin->ok()) {
      st.SkipWithError("cannot pin");
      return;
    }
  }
  for (auto _ : st) {
    auto r = p->call<&device_api::ping>();
    if (!r) {
      st.SkipWithError(r.error().message().c_str());
      break;
    }
  }
}

constexpr std::size_t k4K = 4096;
const device_config kCfg4K{k4K, 4, 1.0, 0};

// 4 KiB in: device write (a memcpy inside the plugin); 4 KiB out: device read.
void in_4k(benchmark::State& st) {
  auto p = load_device(Policy().spin(), st);
  if (!p) return;
  if (!p->call<&device_api::configure>(&kCfg4K)) return st.SkipWithError("configure failed");
  std::vector<std::uint8_t> buf(k4K, 7);
  for (auto _ : st) {
    auto r = p->call<&device_api::write>(1u, buf.data(), buf.size());
    if (!r) return st.SkipWithError(r.error().message().c_str());
  }
}

void out_4k(benchmark::State& st) {
  auto p = load_device(Policy().spin(), st);
  if (!p) return;
  if (!p->call<&device_api::configure>(&kCfg4K)) return st.SkipWithError("configure failed");
  std::vector<std::uint8_t> buf(k4K);
  for (auto _ : st) {
    auto r = p->call<&device_api::read>(1u, buf.data(), buf.size());
    if (!r) return st.SkipWithError(r.error().message().c_str());
    benchmark::ClobberMemory();
  }
}

// Floors for the buffer calls: the same plugin functions called in this process, unsandboxed.
const device_api* direct_device(benchmark::State& st) {
  static void* lib = dlopen(plugin_path("device").c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    st.SkipWithError("dlopen of the device extension failed");
    return nullptr;
  }
  auto entry = reinterpret_cast<const device_api* (*)()>(dlsym(lib, "device_entry"));
  const device_api* api = entry ? entry() : nullptr;
  if (!api || api->init(&kBenchHost) != 0 || api->configure(&kCfg4K) != 0) {
    st.SkipWithError("direct device setup failed");
    return nullptr;
  }
  return api;
}

void direct_write_4k(benchmark::State& st) {
  const device_api* api = direct_device(st);
  if (!api) return;
  std::vector<std::uint8_t> buf(k4K, 7);
  for (auto _ : st) benchmark::DoNotOptimize(api->write(1, buf.data(), buf.size()));
}

void direct_read_4k(benchmark::State& st) {
  const device_api* api = direct_device(st);
  if (!api) return;
  std::vector<std::uint8_t> buf(k4K);
  for (auto _ : st) {
    benchmark::DoNotOptimize(api->read(1, buf.data(), buf.size()));
    benchmark::ClobberMemory();
  }
}

// One plugin -> host service round trip: log_echo makes `times` log calls plus one now_ns call;
// the time per iteration is divided over those upcalls (the one outer call is amortised).
void upcall(benchmark::State& st) {
  auto p = load_device(Policy().spin(), st);
  if (!p) return;
  constexpr long kTimes = 100;
  for (auto _ : st) {
    auto r = p->call<&device_api::log_echo>("x", kTimes);
    if (!r) return st.SkipWithError(r.error().message().c_str());
  }
}

void register_all() {
  bench::register_floors();
  const auto cpus = bench::cpu_ids();
  const int a = cpus.empty() ? 0 : cpus.front();
  const int b = cpus.size() > 1 ? cpus[1] : a;
  benchmark::RegisterBenchmark("xpc/null_call", [](benchmark::State& s) { null_call(s, Policy().spin(), -1, -1); })
      ->UseRealTime();
  benchmark::RegisterBenchmark("xpc/null_call_cross_cpu", [a, b](benchmark::State& s) {
    if (a == b) return s.SkipWithError("needs 2 CPUs");
    null_call(s, Policy().spin(), a, b);
  })->UseRealTime();
  benchmark::RegisterBenchmark("xpc/null_call_futex_only_cross_cpu", [a, b](benchmark::State& s) {
    if (a == b) return s.SkipWithError("needs 2 CPUs");
    null_call(s, 0ns, a, b);
  })->UseRealTime();
  benchmark::RegisterBenchmark("xpc/null_call_same_cpu", [a](benchmark::State& s) { null_call(s, Policy().spin(), a, a); })
      ->UseRealTime();
  benchmark::RegisterBenchmark("direct/write_4k", direct_write_4k);
  benchmark::RegisterBenchmark("direct/read_4k", direct_read_4k);
  benchmark::RegisterBenchmark("xpc/in_4k", in_4k)->UseRealTime();
  benchmark::RegisterBenchmark("xpc/out_4k", out_4k)->UseRealTime();
  benchmark::RegisterBenchmark("xpc/upcall_x101", upcall)->UseRealTime();
}

int run(const bench::Options& opt) {
  register_all();
  const bench::Measured m = bench::run_registered(opt);
  bench::Table table(m);
  table.add("floor/direct_call", std::nullopt, "call through a function pointer");
  table.add("floor/futex_same_cpu", std::nullopt, "raw futex ping-pong, 2 processes, 1 CPU");
  table.add("floor/futex_cross_cpu", std::nullopt, "raw futex ping-pong, 2 processes, 2 CPUs");
  table.add("floor/spin_cross_cpu", std::nullopt, "raw spin ping-pong, 2 processes, 2 CPUs");
  table.add("floor/socketpair", std::nullopt, "unix socketpair round trip (sandbox2's transport)");
  table.add("xpc/null_call", "floor/futex_cross_cpu", "unpinned, adaptive spin; target <= 1.3x");
  table.add("xpc/null_call_cross_cpu", "floor/spin_cross_cpu", "pinned 2 CPUs, spin catches the reply; target <= 1.5x");
  table.add("xpc/null_call_futex_only_cross_cpu", "floor/futex_cross_cpu", "pinned 2 CPUs, no spin");
  table.add("xpc/null_call_same_cpu", "floor/futex_same_cpu", "pinned 1 CPU (spin skipped)");
  table.add("xpc/null_call", "floor/socketpair");
  table.add("direct/write_4k", std::nullopt, "device write of 4 KiB, extension called in-process");
  table.add("direct/read_4k", std::nullopt, "device read of 4 KiB, extension called in-process");
  table.add("xpc/in_4k", "direct/write_4k", "device write, 4 KiB in-buffer, through the domain");
  table.add("xpc/out_4k", "direct/read_4k", "device read, 4 KiB out-buffer, through the domain");
  table.add("xpc/in_4k", "xpc/null_call");
  table.add("xpc/out_4k", "xpc/null_call");
  if (auto it = m.ns.find("xpc/upcall_x101"); it != m.ns.end()) {
    bench::Row r;
    r.name = "xpc/upcall";
    r.value = it->second / 101.0;
    r.floor = "xpc/null_call";
    if (auto f = m.ns.find("xpc/null_call"); f != m.ns.end()) r.ratio = r.value / f->second;
    r.note = "extension -> host service round trip (101 per call, divided)";
    table.add(std::move(r));
  }
  return table.finish(opt.json);
}

}  // namespace

void add_bench_xpc(CLI::App& bench, int& exit_code) {
  bench::add_command(bench, "xpc", "Cost of a call into a process domain and back, beside its floors", run, exit_code);
}

}  // namespace ward::cli
