#include "events_bench.h"

#include <atomic>
#include <cstdint>
#include <thread>

#include <benchmark/benchmark.h>

#include "ward/events/event.h"

namespace ward::bench {
namespace {

using U64Event = Event<std::uint64_t(std::uint64_t)>;

[[gnu::noinline]] std::uint64_t floor_target(std::uint64_t x) { return x + 1; }

void BM_direct_call_floor(benchmark::State& state) {
  std::uint64_t (*fn)(std::uint64_t) = &floor_target;
  std::uint64_t v = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(fn);  // the compiler no longer knows where fn points
    v = fn(v);
  }
  benchmark::DoNotOptimize(v);
}

// The raise loop shared by the raise benchmarks: one raise per iteration, result fed back.
void raise_loop(benchmark::State& state, U64Event& ev) {
  std::uint64_t v = 0;
  for (auto _ : state) {
    v = *ev.raise(v).value;
  }
  benchmark::DoNotOptimize(v);
}

void BM_raise_1_handler(benchmark::State& state) {
  U64Event ev("bench", "bench");
  auto b = ev.bind({"bench"}, [](std::uint64_t x) { return x + 1; });
  if (!b) {
    state.SkipWithError(b.error().detail.c_str());
    return;
  }
  raise_loop(state, ev);
}

void BM_raise_1_guarded(benchmark::State& state) {
  U64Event ev("bench", "bench");
  auto b = ev.bind({"bench"}, [](std::uint64_t x) { return x + 1; }, [](std::uint64_t x) { return x != ~0ull; });
  if (!b) {
    state.SkipWithError(b.error().detail.c_str());
    return;
  }
  raise_loop(state, ev);
}

void BM_raise_8_handlers(benchmark::State& state) {
  U64Event ev("bench", "bench");
  std::vector<Binding> bs;
  for (int i = 0; i < 8; ++i) {
    auto b = ev.bind({"bench"}, [](std::uint64_t x) { return x + 1; });
    if (!b) {
      state.SkipWithError(b.error().detail.c_str());
      return;
    }
    bs.push_back(std::move(*b));
  }
  raise_loop(state, ev);
}

void BM_bind_unbind(benchmark::State& state) {
  U64Event ev("bench", "bench");
  auto keep = ev.bind({"bench"}, [](std::uint64_t x) { return x + 1; });
  for (auto _ : state) {
    auto b = ev.bind({"bench"}, [](std::uint64_t x) { return x + 2; });
    if (!b) {
      state.SkipWithError(b.error().detail.c_str());
      return;
    }
    b->unbind();
  }
}

void BM_raise_while_binding(benchmark::State& state) {
  U64Event ev("bench", "bench");
  auto keep = ev.bind({"bench"}, [](std::uint64_t x) { return x + 1; }, BindOptions{.name = "keep"});
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> cycles{0};
  std::thread churn([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      // Placed before "keep" so the combined (last) value stays keep's.
      auto b = ev.bind({"churn"}, [](std::uint64_t x) { return x + 2; }, BindOptions{.before = "keep"});
      if (b) b->unbind();
      cycles.fetch_add(1, std::memory_order_relaxed);
    }
  });
  raise_loop(state, ev);
  stop = true;
  churn.join();
  state.counters["bind_unbind_cycles"] =
      benchmark::Counter(static_cast<double>(cycles.load()), benchmark::Counter::kIsRate);
}

}  // namespace

void register_event_benchmarks() {
  static bool registered = false;
  if (registered) return;
  registered = true;
  benchmark::RegisterBenchmark("events/direct_call_floor", BM_direct_call_floor)->MinTime(0.2);
  benchmark::RegisterBenchmark("events/raise_1_handler", BM_raise_1_handler)->MinTime(0.2);
  benchmark::RegisterBenchmark("events/raise_1_guarded", BM_raise_1_guarded)->MinTime(0.2);
  benchmark::RegisterBenchmark("events/raise_8_handlers", BM_raise_8_handlers)->MinTime(0.2);
  benchmark::RegisterBenchmark("events/bind_unbind", BM_bind_unbind)->MinTime(0.2);
  // Real time: the point is the raise rate while the churn thread competes for the machine.
  benchmark::RegisterBenchmark("events/raise_while_binding", BM_raise_while_binding)->MinTime(0.2)->UseRealTime();
}

}  // namespace ward::bench
