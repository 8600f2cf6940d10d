// `ward bench soak` (`make soak`): a supervised kv extension under steady multi-threaded load for
// a configurable time, killed from outside every few seconds. It reports what a host running for
// months cares about: its own RSS at the start and the end, the replay log's size, the recovery
// time (kill -> next successful call) of the first and the last fault beside the floor (starting
// the helper and loading an empty plugin), and the failures that were *not* injected, which must
// be 0 (the exit code is 1 otherwise). Progress lines go to stderr.
//
// A failure counts as injected when its cause is the SIGKILL the soak sent (a call that reached
// the killed instance, or one refused while the recovery ran); anything else (a hang, a limit,
// the extension disabled, a get that returns a value its thread never put) is not.
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "commands.h"
#include "interfaces.h"
#include "kv_host.h"
#include "paths.h"
#include "progress.h"
#include "report.h"

namespace ward::cli {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct SoakOptions {
  bool json = false;
  bool quiet = false;
  double seconds = 30;
  double minutes = 0;
  bool hour = false;
  int threads = 4;
  int rate = 4000;          // calls per second, all threads together; 0: as fast as they go
  int fault_every_ms = 2000;
  int keys = 100;           // per thread
};

std::uint64_t host_rss() {
  std::FILE* f = std::fopen("/proc/self/statm", "re");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

bool injected(const Error& e) { return e.kind == Errc::crashed && e.signal == SIGKILL; }

struct Counters {
  std::atomic<std::uint64_t> calls{0}, injected_failures{0}, other_failures{0};
  std::mutex mu;
  std::vector<std::string> other;  // the first few, for the report
  void fail(const std::string& what) {
    ++other_failures;
    std::lock_guard g(mu);
    if (other.size() < 5) other.push_back(what);
  }
};

// One worker: its own keys (so what a get must return is known), puts and gets at its share of
// the rate. A put that failed because of the kill leaves its key uncertain until the next get.
void worker(Extension<kv_api>& kv, std::uint64_t table, int id, const SoakOptions& o, Clock::time_point end,
            Counters& c) {
  std::mt19937 rng(static_cast<unsigned>(id) * 7919u + 1);
  std::vector<std::optional<std::uint8_t>> expect(static_cast<std::size_t>(o.keys));
  std::vector<bool> known(expect.size(), true);  // absent keys are known absent
  const auto period = o.rate > 0 ? std::chrono::nanoseconds(1'000'000'000ll * o.threads / o.rate) : 0ns;
  auto next = Clock::now();
  while (Clock::now() < end) {
    const std::uint32_t k = static_cast<std::uint32_t>(rng() % expect.size());
    const std::uint32_t key = static_cast<std::uint32_t>(id) * 10000u + k;
    if (rng() % 2 == 0) {
      const std::uint8_t v = static_cast<std::uint8_t>(rng());
      const std::uint8_t val[4] = {v, v, v, v};
      auto r = kv.call<&kv_api::put>(table, key, val, sizeof val);
      if (r && r->unverified_value_i_trust_it() == 4) {
        expect[k] = v;
        known[k] = true;
      } else if (!r && injected(r.error())) {
        ++c.injected_failures;
        known[k] = false;
      } else {
        c.fail(r ? fmt::format("put returned {}", r->unverified_value_i_trust_it()) : r.error().message());
      }
    } else {
      std::uint8_t out[8] = {};
      auto r = kv.call<&kv_api::get>(table, key, out, sizeof out);
      if (!r) {
        if (injected(r.error())) ++c.injected_failures;
        else c.fail(r.error().message());
      } else {
        const long n = r->unverified_value_i_trust_it();
        const std::optional<std::uint8_t> got = n == 4 ? std::optional<std::uint8_t>(out[0]) : std::nullopt;
        if (n != 4 && n != -2) c.fail(fmt::format("get returned {}", n));
        else if (known[k] && got != expect[k]) c.fail(fmt::format("key {}: got a value this thread never left there", key));
        expect[k] = got;
        known[k] = true;
      }
    }
    ++c.calls;
    if (period > 0ns) {
      next += period;
      std::this_thread::sleep_until(next);
    }
  }
}

// The floor: spawn the helper, sandbox it, load an empty plugin (median of 9).
std::optional<double> floor_ns(const Policy& pol) {
  std::vector<double> v;
  for (int i = 0; i < 9; ++i) {
    const auto t0 = Clock::now();
    auto p = Instance<probe_api>::load(plugin_path("probe_ok"), "probe_entry", pol);
    const auto t1 = Clock::now();
    if (!p) return std::nullopt;
    v.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
  }
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int run(const SoakOptions& o) {
  const double seconds = o.hour ? 3600 : o.minutes > 0 ? o.minutes * 60 : o.seconds;
  const Policy pol = *Policy::builder().timeout(2s).memory(256ull << 20).discard_output().build();
  Supervisor sup{RestartPolicy{.max_restarts = 1000000, .window = 500ms, .recovery_timeout = 30s}};
  auto loaded = sup.load<kv_api>(plugin_path("kv"), "kv_entry", pol, "soak-kv");
  if (!loaded) {
    fmt::print(stderr, "soak: cannot load the kv extension: {}\n", loaded.error().message());
    return 1;
  }
  auto& kv = **loaded;
  if (!kv.call<&kv_api::init>(&kvhost::table)) return fmt::print(stderr, "soak: init failed\n"), 1;
  auto tab = kv.call<&kv_api::open_table>("soak");
  if (!tab) return fmt::print(stderr, "soak: open_table failed: {}\n", tab.error().message()), 1;
  const std::uint64_t table = tab->unverified_value_i_trust_it();
  const auto floor = floor_ns(pol);

  const std::uint64_t rss0 = host_rss();
  const std::size_t log0 = kv.stats().log_size;
  Counters c;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  if (!o.quiet)
    fmt::print(stderr, "soak: {:.0f} s, {} threads, {} calls/s, a kill every {} ms; host RSS {:.1f} MiB\n", seconds,
               o.threads, o.rate, o.fault_every_ms, static_cast<double>(rss0) / (1 << 20));
  std::vector<std::jthread> workers;
  for (int i = 0; i < o.threads; ++i) workers.emplace_back([&, i] { worker(kv, table, i, o, end, c); });

  // The injector: kill, then time until a call of its own succeeds again.
  std::vector<double> recovery_ns;
  Progress bar({.label = "soak", .total = static_cast<std::uint64_t>(seconds), .unit = "s",
                .mode = Progress::mode_for(o.quiet)});
  for (auto next_fault = start + std::chrono::milliseconds(o.fault_every_ms); next_fault < end;
       next_fault += std::chrono::milliseconds(o.fault_every_ms)) {
    std::this_thread::sleep_until(next_fault);
    kv.kill();
    const auto t0 = Clock::now();
    for (;;) {
      auto r = kv.call<&kv_api::ping>();
      if (r) break;
      if (!injected(r.error())) {
        c.fail("ping after a kill: " + r.error().message());
        if (kv.disabled()) break;
      }
      std::this_thread::sleep_for(100us);  // another thread is recovering, or backing off
    }
    recovery_ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
    if (kv.disabled()) break;
    bar.update(static_cast<std::uint64_t>(std::chrono::duration<double>(Clock::now() - start).count()),
               fmt::format("calls {}  faults {}  RSS {:.1f} MiB  log {}  last recovery {:.1f} ms  not injected {}",
                           c.calls.load(), recovery_ns.size(), static_cast<double>(host_rss()) / (1 << 20),
                           kv.stats().log_size, recovery_ns.back() / 1e6, c.other_failures.load()));
  }
  workers.clear();
  bar.finish(fmt::format("{} faults injected", recovery_ns.size()));
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const std::uint64_t rss1 = host_rss();
  const auto st = kv.stats();

  std::vector<bench::Row> rows;
  auto row = [&](std::string name, double value, std::string unit, std::string note,
                 std::optional<double> floor_value = std::nullopt) {
    bench::Row r;
    r.name = std::move(name);
    r.value = value;
    r.unit = std::move(unit);
    r.note = std::move(note);
    if (floor_value && *floor_value > 0) {
      r.floor = "floor/load_empty_plugin";
      r.ratio = value / *floor_value;
    }
    rows.push_back(std::move(r));
  };
  if (floor) row("floor/load_empty_plugin", *floor, "ns", "spawn helper, sandbox, dlopen an empty extension (median)");
  row("soak/seconds", elapsed, "s", fmt::format("{} threads at {} calls/s", o.threads, o.rate));
  row("soak/calls", static_cast<double>(c.calls.load()), "calls", "");
  row("soak/faults_injected", static_cast<double>(recovery_ns.size()), "kills", fmt::format("one every {} ms", o.fault_every_ms));
  row("soak/host_rss_start", static_cast<double>(rss0) / (1 << 20), "MiB", "");
  row("soak/host_rss_end", static_cast<double>(rss1) / (1 << 20), "MiB", "should stay flat");
  row("soak/log_size_start", static_cast<double>(log0), "calls", "replay log entries");
  row("soak/log_size_end", static_cast<double>(st.log_size), "calls", "should stay bounded by live state (~keys)");
  if (!recovery_ns.empty()) {
    row("soak/recovery_first_fault", recovery_ns.front(), "ns", "kill -> next successful call", floor);
    row("soak/recovery_last_fault", recovery_ns.back(), "ns", "should stay flat", floor);
    row("soak/recovery_max", *std::max_element(recovery_ns.begin(), recovery_ns.end()), "ns", "", floor);
  }
  row("soak/failures_injected", static_cast<double>(c.injected_failures.load()), "calls", "caused by the kills");
  row("soak/failures_not_injected", static_cast<double>(c.other_failures.load()), "calls", "must be 0");
  bench::print(rows, o.json);
  for (const auto& w : c.other) fmt::print(stderr, "soak: not injected: {}\n", w);
  if (kv.disabled()) fmt::print(stderr, "soak: the extension was disabled\n");
  return c.other_failures.load() == 0 && !kv.disabled() ? 0 : 1;
}

}  // namespace

void add_bench_soak(CLI::App& bench, int& exit_code) {
  auto o = std::make_shared<SoakOptions>();
  auto* c = bench.add_subcommand(
      "soak", "A supervised extension under steady multi-threaded load with a kill every few seconds: host RSS, "
              "replay-log size and recovery time at the start and the end, failures not injected (must be 0)");
  c->add_flag("--json", o->json, "Print a JSON array of {name, value, unit, floor, ratio}");
  c->add_flag("-q,--quiet", o->quiet, "No progress (otherwise on stderr: a bar on a terminal, a line every 5 s elsewhere)");
  c->add_option("--seconds", o->seconds, "How long to run")->capture_default_str()->check(CLI::Range(1.0, 86400.0));
  c->add_option("--minutes", o->minutes, "How long to run, in minutes (overrides --seconds)")->check(CLI::Range(0.0, 1440.0));
  c->add_flag("--hour", o->hour, "Run for an hour (overrides both)");
  c->add_option("--threads", o->threads, "Host threads calling the extension")->capture_default_str()->check(CLI::Range(1, 64));
  c->add_option("--rate", o->rate, "Calls per second, all threads together (0: as fast as they go)")
      ->capture_default_str()
      ->check(CLI::Range(0, 10'000'000));
  c->add_option("--fault-every", o->fault_every_ms, "Milliseconds between kills")->capture_default_str()->check(CLI::Range(50, 3'600'000));
  c->add_option("--keys", o->keys, "Keys per thread (the live state)")->capture_default_str()->check(CLI::Range(1, 200));
  c->callback([o, &exit_code] { exit_code = run(*o); });
}

}  // namespace ward::cli
