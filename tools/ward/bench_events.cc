// `ward bench events`: SPIN-style events beside their floors: a raise with one handler and no
// guard vs a direct call through a function pointer; with a guard; with 8 handlers; bind +
// unbind; raises while another thread binds and unbinds; and a handler in a process domain vs
// the raw domain call.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <memory>
#include <optional>

#include "commands.h"
#include "events_bench.h"
#include "interfaces.h"
#include "paths.h"
#include "report.h"
#include "ward/events/domain_handler.h"

namespace ward::cli {
namespace {

std::optional<Instance<device_api>>& device(benchmark::State& st) {
  static std::optional<Instance<device_api>> d;
  if (!d) {
    auto p = Instance<device_api>::load(plugin_path("device"), "device_entry");
    if (!p) st.SkipWithError(p.error().message().c_str());
    else d.emplace(std::move(*p));
  }
  return d;
}

// Floor: the same extension function called directly through the domain.
void raw_domain_call(benchmark::State& st) {
  auto& d = device(st);
  if (!d) return;
  for (auto _ : st) {
    auto r = d->call<&device_api::ping>();
    if (!r) return st.SkipWithError(r.error().message().c_str());
  }
}

void domain_handler_raise(benchmark::State& st) {
  auto& d = device(st);
  if (!d) return;
  Event<long()> ev("bench.tick", "bench");
  auto b = ev.bind(binder_for(*d, "device"), from_domain<&device_api::ping>(*d, [](long v) { return v == 0; }));
  if (!b) return st.SkipWithError(b.error().message().c_str());
  for (auto _ : st) {
    auto r = ev.raise();
    if (!r.failed.empty()) return st.SkipWithError(r.failed[0].error.message().c_str());
    benchmark::DoNotOptimize(r.value);
  }
}

int run(const bench::Options& opt) {
  bench::register_event_benchmarks();
  benchmark::RegisterBenchmark("events/raw_domain_call", raw_domain_call)->UseRealTime();
  benchmark::RegisterBenchmark("events/raise_domain_handler", domain_handler_raise)->UseRealTime();
  const bench::Measured m = bench::run_registered(opt);
  bench::Table table(m);
  table.add("events/direct_call_floor", std::nullopt, "call through a function pointer");
  table.add("events/raise_1_handler", "events/direct_call_floor", "one handler, no guard; target <= 2x");
  table.add("events/raise_1_guarded", "events/direct_call_floor", "one handler, one guard");
  table.add("events/raise_8_handlers", "events/direct_call_floor", "eight handlers");
  table.add("events/bind_unbind", std::nullopt, "bind + unbind (the unbind waits for a grace period)");
  table.add("events/raise_while_binding", "events/raise_1_handler", "raise while another thread binds and unbinds");
  table.add("events/raw_domain_call", std::nullopt, "a call into a process domain");
  table.add("events/raise_domain_handler", "events/raw_domain_call", "a raise whose handler is in a process domain; target <= 1.1x");
  return table.finish(opt.json);
}

}  // namespace

void add_bench_events(CLI::App& bench, int& exit_code) {
  bench::add_command(bench, "events", "Event raise, bind and domain-handler costs beside their floors", run, exit_code);
}

}  // namespace ward::cli
