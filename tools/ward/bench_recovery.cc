// `ward bench recovery`: how long from a fault to the first successful call again, beside the
// floor (starting the helper and loading an empty plugin), and what handle tracking adds to a
// call that passes a handle.
#include <benchmark/benchmark.h>

#include <memory>
#include <optional>

#include "ckpt_model_host.h"
#include "commands.h"
#include "interfaces.h"
#include "kv_host.h"
#include "paths.h"
#include "report.h"

namespace ward::cli {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

Policy bench_policy() { return *Policy::builder().timeout(2s).memory(256ull << 20).build(); }

// Floor: what any restart must pay at least — spawn the helper, sandbox it, load a plugin that
// does nothing, resolve its entry.
void load_empty(benchmark::State& st) {
  for (auto _ : st) {
    const auto t0 = Clock::now();
    auto p = Instance<probe_api>::load(plugin_path("probe_ok"), "probe_entry", bench_policy());
    const auto t1 = Clock::now();
    if (!p) return st.SkipWithError(p.error().message().c_str());
    st.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
  }
}

// A supervised kv instance with a little state (init + a table + 8 keys to replay).
struct KvSetup {
  Supervisor sup{RestartPolicy{.max_restarts = 1000000, .window = 1s}};
  std::unique_ptr<Extension<kv_api>> kv;
  std::uint64_t table = 0;
  static KvSetup* get(benchmark::State& st) {
    static std::unique_ptr<KvSetup> s;
    if (!s) {
      auto fresh = std::make_unique<KvSetup>();
      auto e = fresh->sup.load<kv_api>(plugin_path("kv"), "kv_entry", bench_policy());
      if (!e) {
        st.SkipWithError(e.error().message().c_str());
        return nullptr;
      }
      fresh->kv = std::move(*e);
      auto t = fresh->kv->call<&kv_api::init>(&kvhost::table);
      auto tab = fresh->kv->call<&kv_api::open_table>("bench");
      if (!t || !tab) {
        st.SkipWithError("kv setup failed");
        return nullptr;
      }
      fresh->table = tab->unverified_value_i_trust_it();
      for (std::uint32_t k = 0; k < 8; ++k) {
        const std::uint8_t v[4] = {1, 2, 3, static_cast<std::uint8_t>(k)};
        (void)fresh->kv->call<&kv_api::put>(fresh->table, k, v, sizeof v);
      }
      s = std::move(fresh);
    }
    return s.get();
  }
};

// The plugin crashes inside a call (SIGSEGV); the call is idempotent, so the supervisor
// detects, releases, restarts, replays 10 calls and retries: the time is that one call's.
void crash_to_success(benchmark::State& st) {
  KvSetup* s = KvSetup::get(st);
  if (!s) return;
  for (auto _ : st) {
    if (!s->kv->call<&kv_api::inject>(KV_FAULT_SEGV)) return st.SkipWithError("inject failed");
    std::uint8_t out[8];
    const auto t0 = Clock::now();
    auto r = s->kv->call<&kv_api::get>(s->table, 3u, out, sizeof out);
    const auto t1 = Clock::now();
    if (!r) return st.SkipWithError(r.error().message().c_str());
    st.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
  }
}

// Each iteration: `before()` untimed, then the time of `timed()`, which must succeed.
template <class Before, class Timed>
void time_each(benchmark::State& st, Before before, Timed timed) {
  for (auto _ : st) {
    before();
    const auto t0 = Clock::now();
    auto r = timed();
    const auto t1 = Clock::now();
    if (!r) return st.SkipWithError(r.error().message().c_str());
    st.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
  }
}

// Killed from outside while idle; the next call finds it dead. Each iteration's time: that call's.
void time_kill_to_ping(benchmark::State& st, KvSetup* s) {
  time_each(st, [&] { s->kv->kill(); }, [&] { return s->kv->call<&kv_api::ping>(); });
}

void kill_to_success(benchmark::State& st) {
  if (KvSetup* s = KvSetup::get(st)) time_kill_to_ping(st, s);
}

// A supervised kv instance that has seen `calls` puts rewriting the same 100 keys (the log keeps
// the latest put per key: interfaces.h, recovery/replay_log.h), killed while idle; the next call
// finds it dead, and its time is the recovery's. Flat in `calls` when the log holds live state.
template <int Calls>
void history_to_success(benchmark::State& st) {
  static std::unique_ptr<KvSetup> s;
  if (!s) {
    auto fresh = std::make_unique<KvSetup>();
    auto e = fresh->sup.load<kv_api>(plugin_path("kv"), "kv_entry", bench_policy());
    if (!e) return st.SkipWithError(e.error().message().c_str());
    fresh->kv = std::move(*e);
    auto t = fresh->kv->call<&kv_api::init>(&kvhost::table);
    auto tab = fresh->kv->call<&kv_api::open_table>("history");
    if (!t || !tab) return st.SkipWithError("kv setup failed");
    fresh->table = tab->unverified_value_i_trust_it();
    for (int i = 0; i < Calls; ++i) {
      const std::uint8_t v[8] = {static_cast<std::uint8_t>(i), static_cast<std::uint8_t>(i >> 8),
                                 static_cast<std::uint8_t>(i >> 16)};
      if (!fresh->kv->call<&kv_api::put>(fresh->table, static_cast<std::uint32_t>(i % 100), v, sizeof v))
        return st.SkipWithError("put failed");
    }
    s = std::move(fresh);
  }
  time_kill_to_ping(st, s.get());
  st.counters["log_size"] = static_cast<double>(s->kv->stats().log_size);
}

// A model whose state is costly to rebuild (ckpt_model: 16 Ki words retrained by 200 logged
// calls), killed while idle; the next call's time is the recovery's. Without a checkpoint the
// recovery replays the 200 trainings; with one taken after them it restores the state and
// replays nothing.
struct ModelSetup {
  std::unique_ptr<Extension<ckpt_model_api>> ext;
  static std::unique_ptr<ModelSetup> make(benchmark::State& st, bool checkpointed, std::uint32_t words = 16384,
                                          std::uint64_t trainings = 200) {
    RestartPolicy rp{.max_restarts = 1000000, .window = 1s};
    if (checkpointed) rp.checkpoint.heap_bytes = 64ull << 20;
    auto e = Supervisor(rp).load<ckpt_model_api>(plugin_path("ckpt_model"), "ckpt_model_entry", bench_policy());
    if (!e) {
      st.SkipWithError(e.error().message().c_str());
      return nullptr;
    }
    auto s = std::make_unique<ModelSetup>();
    s->ext = std::move(*e);
    bool ok = s->ext->call<&ckpt_model_api::reset>(words).has_value();
    for (std::uint64_t i = 0; ok && i < trainings; ++i) ok = s->ext->call<&ckpt_model_api::train>(i, 10u).has_value();
    if (ok && checkpointed) ok = s->ext->checkpoint().has_value();
    if (!ok) {
      st.SkipWithError("model setup failed");
      return nullptr;
    }
    return s;
  }
};

template <bool Checkpointed>
void model_to_success(benchmark::State& st) {
  static std::unique_ptr<ModelSetup> s;
  if (!s && !(s = ModelSetup::make(st, Checkpointed))) return;
  time_each(st, [&] { s->ext->kill(); }, [&] { return s->ext->call<&ckpt_model_api::digest>(); });
  st.counters["log_size"] = static_cast<double>(s->ext->stats().log_size);
}

// What taking a checkpoint costs the callers it holds back: drain (none here) and copy; of that
// model, and of one of 24 MiB (3 Mi words, trained once).
template <std::uint32_t Words>
void checkpoint_pause(benchmark::State& st) {
  static std::unique_ptr<ModelSetup> s;
  if (!s && !(s = ModelSetup::make(st, true, Words, Words > 16384 ? 1 : 200))) return;
  time_each(st, [] {}, [&] { return s->ext->checkpoint(); });
  st.counters["bytes"] = static_cast<double>(s->ext->stats().checkpoint_bytes);
}

// Tracking cost: the same plugin function, its argument declared a handle (checked against the
// domain's table on every call) or a plain integer.
std::optional<Instance<zoo_api>>& zoo(benchmark::State& st) {
  static std::optional<Instance<zoo_api>> z;
  if (!z) {
    auto p = Instance<zoo_api>::load(plugin_path("abi_zoo"), "zoo_entry", bench_policy());
    if (!p) st.SkipWithError(p.error().message().c_str());
    else z.emplace(std::move(*p));
  }
  return z;
}

void call_plain(benchmark::State& st) {
  auto& z = zoo(st);
  if (!z) return;
  for (auto _ : st) {
    auto r = z->call<&zoo_api::take_plain>(std::uint64_t{41});
    if (!r) return st.SkipWithError(r.error().message().c_str());
  }
}

void call_handle(benchmark::State& st) {
  auto& z = zoo(st);
  if (!z) return;
  auto h = z->domain().handles().grant(std::make_shared<ZooObject>(), rights::read);
  if (!h) return st.SkipWithError("grant failed");
  for (auto _ : st) {
    auto r = z->call<&zoo_api::take_handle>(*h);
    if (!r) return st.SkipWithError(r.error().message().c_str());
  }
  (void)z->domain().handles().close(*h);
}

void handle_check(benchmark::State& st) {
  HandleTable t;
  auto h = t.grant(std::make_shared<ZooObject>(), rights::read);
  for (auto _ : st) benchmark::DoNotOptimize(t.check(*h, handle_type<ZooObject>(), rights::read).has_value());
}

int direct_target(int x) { return x + 1; }
void direct_call(benchmark::State& st) {
  int (*volatile fn)(int) = direct_target;
  int x = 0;
  for (auto _ : st) benchmark::DoNotOptimize(x = fn(x));
}

int run(bench::Options opt, int samples) {
  const auto reps = [&](benchmark::internal::Benchmark* b) {
    b->Iterations(1)->Repetitions(samples)->UseManualTime()->ComputeStatistics("p99", bench::p99)->ReportAggregatesOnly(true);
  };
  reps(benchmark::RegisterBenchmark("floor/load_empty_plugin", load_empty));
  reps(benchmark::RegisterBenchmark("recovery/crash_to_first_success", crash_to_success));
  reps(benchmark::RegisterBenchmark("recovery/kill_to_first_success", kill_to_success));
  reps(benchmark::RegisterBenchmark("recovery/history_1e3", history_to_success<1000>));
  reps(benchmark::RegisterBenchmark("recovery/history_1e5", history_to_success<100000>));
  reps(benchmark::RegisterBenchmark("recovery/model_full_replay", model_to_success<false>));
  reps(benchmark::RegisterBenchmark("recovery/model_checkpoint", model_to_success<true>));
  reps(benchmark::RegisterBenchmark("checkpoint/pause_model", checkpoint_pause<16384>));
  reps(benchmark::RegisterBenchmark("checkpoint/pause_24MiB", checkpoint_pause<(3u << 20)>));
  benchmark::RegisterBenchmark("floor/direct_call", direct_call);
  benchmark::RegisterBenchmark("tracking/handle_table_check", handle_check);
  benchmark::RegisterBenchmark("xpc/call_u64_plain", call_plain)->UseRealTime();
  benchmark::RegisterBenchmark("xpc/call_u64_handle", call_handle)->UseRealTime();
  const bench::Measured m = bench::run_registered(opt);
  bench::Table table(m);
  auto add_p99 = [&](const std::string& name, const std::string& floor, std::string note) {
    // A percentile compared with the floor's median: the tail a caller can meet, against the
    // typical cost of starting any instance.
    auto it = m.p99.find(name);
    auto f = m.ns.find(floor);
    if (it == m.p99.end()) return;
    bench::Row r;
    r.name = name + "/p99";
    r.value = it->second;
    r.floor = floor;
    if (f != m.ns.end() && f->second > 0) r.ratio = it->second / f->second;
    r.note = std::move(note);
    table.add(std::move(r));
  };
  table.add("floor/load_empty_plugin", std::nullopt, "spawn helper, sandbox, dlopen an empty extension (median)");
  add_p99("floor/load_empty_plugin", "floor/load_empty_plugin", "the floor's own tail");
  table.add("recovery/crash_to_first_success", "floor/load_empty_plugin", "SIGSEGV inside a call -> that call succeeds; target <= 2x");
  add_p99("recovery/crash_to_first_success", "floor/load_empty_plugin", "target <= 5x");
  table.add("recovery/kill_to_first_success", "floor/load_empty_plugin", "SIGKILL while idle -> next call succeeds");
  add_p99("recovery/kill_to_first_success", "floor/load_empty_plugin", "");
  table.add("recovery/history_1e3", "floor/load_empty_plugin", "SIGKILL after 10^3 puts over 100 keys -> next call succeeds");
  table.add("recovery/history_1e5", "floor/load_empty_plugin", "the same after 10^5 puts");
  if (auto a = m.ns.find("recovery/history_1e3"), b = m.ns.find("recovery/history_1e5");
      a != m.ns.end() && b != m.ns.end() && a->second > 0) {
    // The target: recovery bounded by live state, not history.
    table.add({"recovery/history_1e5_vs_1e3", b->second, "ns", "recovery/history_1e3", b->second / a->second,
               "history_1e5 against history_1e3: target <= 1.5x"});
  }
  table.add("recovery/model_full_replay", "floor/load_empty_plugin",
            "SIGKILL after 200 logged trainings of a 128 KiB model -> next call (replays all 200)");
  table.add("recovery/model_checkpoint", "floor/load_empty_plugin",
            "the same history, checkpointed after it: restore, replay nothing");
  if (auto a = m.ns.find("recovery/model_full_replay"), b = m.ns.find("recovery/model_checkpoint");
      a != m.ns.end() && b != m.ns.end() && a->second > 0) {
    table.add({"recovery/model_checkpoint_vs_full", b->second, "ns", "recovery/model_full_replay", b->second / a->second,
               "recovery with the checkpoint against the full replay of the same history"});
  }
  table.add("checkpoint/pause_model", "floor/load_empty_plugin",
            "checkpoint() of that model (~0.3 MiB of heap and data): how long callers are held back");
  table.add("checkpoint/pause_24MiB", "floor/load_empty_plugin", "checkpoint() of a 24 MiB model (~32 MiB of heap)");
  table.add("floor/direct_call", std::nullopt);
  table.add("tracking/handle_table_check", "floor/direct_call", "decode + lookup + type + rights");
  table.add("xpc/call_u64_plain", std::nullopt, "extension call with a plain 64-bit argument");
  table.add("xpc/call_u64_handle", "xpc/call_u64_plain", "same call, argument declared a handle (checked)");
  for (auto& r : table.rows())
    if (r.name.ends_with("/p99")) r.note = r.note.empty() ? "99th percentile" : r.note;
  return table.finish(opt.json);
}

}  // namespace

void add_bench_recovery(CLI::App& bench, int& exit_code) {
  auto opt = std::make_shared<bench::Options>();
  auto samples = std::make_shared<int>(100);
  auto* c = bench.add_subcommand("recovery", "Time from a fault to the first successful call again, and tracking cost");
  bench::add_common_options(*c, *opt);
  c->add_option("--samples", *samples, "Faults (and floor loads) to measure")->capture_default_str()->check(CLI::Range(5, 100000));
  c->callback([opt, samples, &exit_code] { exit_code = run(*opt, *samples); });
}

}  // namespace ward::cli
