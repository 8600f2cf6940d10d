// `ward demo`: the main job. A host runs a verified workload on four supervised plugins (a
// key-value store holding host buffers by handle, a text transformer, a block device, a
// checksummer). Mid-run it injects, live, every kind of failure into the plugins it is using:
// crash, abort, hang, wild write, forbidden system call, handle leak, forged handle, memory bomb,
// exit. Each is detected, the failed instance's host objects are released, a fresh instance is
// started and its state replayed; idempotent calls are retried so their callers never notice,
// others get an error. The run ends with a table; the exit code is 0 only if every fault was
// detected and recovered, the host lost nothing, and every workload result verified.
#include <fmt/format.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "commands.h"
#include "interfaces.h"
#include "kv_host.h"
#include "packet_dispatch.h"
#include "paths.h"

namespace ward::cli {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

void quiet_log(const char*) {}
std::uint64_t demo_now() { return static_cast<std::uint64_t>(Clock::now().time_since_epoch().count()); }
constexpr text_host kTextHost{quiet_log};
constexpr device_host kDeviceHost{quiet_log, demo_now};

std::uint32_t crc32_ref(const std::uint8_t* p, std::size_t n) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

// Collects the supervisor's notices; prints the recovery steps of the fault being shown.
struct Journal {
  std::mutex mu;
  bool verbose = true;
  std::vector<double> recovery_ms;
  int failures = 0, restarts = 0, retried = 0, errors_to_callers = 0, disabled = 0;
  std::size_t released = 0;
  std::vector<Error> causes;

  NoticeSink sink() {
    return [this](const RecoveryNotice& n) {
      std::lock_guard<std::mutex> g(mu);
      switch (n.kind) {
        case NoticeKind::failed:
          ++failures;
          causes.push_back(n.cause);
          if (verbose) fmt::print("      detect   {}: {}: {}\n", n.extension, to_string(n.cause.kind), n.cause.detail);
          break;
        case NoticeKind::released:
          released += n.count;
          if (verbose) fmt::print("      release  {} host object(s) the failed instance held\n", n.count);
          break;
        case NoticeKind::restarted: {
          ++restarts;
          const double ms = std::chrono::duration<double, std::milli>(n.elapsed).count();
          recovery_ms.push_back(ms);
          if (verbose) fmt::print("      restart  fresh instance, replayed {} state-setting call(s) in {:.2f} ms\n", n.count, ms);
          break;
        }
        case NoticeKind::retried:
          ++retried;
          if (verbose) fmt::print("      retry    the idempotent call: its caller never noticed\n");
          break;
        case NoticeKind::error_to_caller:
          ++errors_to_callers;
          if (verbose) fmt::print("      error    returned to that caller only\n");
          break;
        case NoticeKind::disabled: ++disabled; break;
        default: break;
      }
    };
  }
};

struct Tally {
  long ops = 0, verified = 0, wrong = 0, errors = 0;
};

struct Fault {
  const char* what;
  int kv_fault;        // injected into the kv plugin, or
  int signal;          // sent to the textxform child from outside
  bool via_put;        // triggered by a non-idempotent call (put) rather than get
  Errc expected;
};

void pkt_log(const char*) {}
constexpr pkt_host kPktHost{pkt_log};

struct SpinOutcome {
  bool ok = false;
  long packets = 0, verified = 0, wrong = 0, handler_failures = 0;
  bool refused_bind = false, ungranted_caught = false, imposed_guard_held = false;
};

// SPIN's packet dispatch: local handlers and a plain-C filter in a process domain share the
// "packet received" event; the filter crashes mid-stream and is recovered.
SpinOutcome run_spin(Supervisor& sup, const Policy& base, bool quiet) {
  SpinOutcome out;
  auto pol = Policy::builder().timeout(base.timeout()).memory(base.memory()).grant("pkt_host").build();
  auto filter = sup.load<pktfilter_api>(plugin_path("pktfilter"), "pktfilter_entry", *pol);
  if (!filter || !(*filter)->call<&pktfilter_api::init>(&kPktHost, std::uint16_t{23})) return out;
  example::PacketStack stack;
  if (!stack.bind_local_handlers() || !stack.bind_filter(**filter)) return out;
  if (!quiet) fmt::print("\n  SPIN: 'packet received' has 3 handlers: dns (first), tcp-counter, pktfilter (process domain, pid {})\n",
                         ward::pid_of((*filter)->domain()));
  // The owner refuses a binder, and imposes its guard on extensions.
  out.refused_bind = !stack.received().bind({"root"}, [](const packet*, const std::uint8_t*, std::size_t) { return true; });
  std::uint32_t rng = 12345;
  auto next = [&] { return rng = rng * 1103515245u + 12345u; };
  long expect_tcp = 0, expect_dns = 0, filter_seen_since_restart = 0;
  std::uint8_t payload[16] = {};
  for (int i = 0; i < 3000; ++i) {
    packet p{};
    const std::uint32_t r = next() >> 8;
    p.proto = r % 3 == 0 ? PKT_TCP : r % 3 == 1 ? PKT_UDP : PKT_ICMP;
    const std::uint16_t ports[] = {80, 443, 53, 23, 8080};
    p.dst_port = ports[(r >> 4) % 5];
    p.src_addr = ((r >> 8) % 10 == 0) ? 0x0A000001u : 0xC0A80002u;  // 10% management traffic
    p.len = sizeof payload;
    if (i == 1500) {
      (void)(*filter)->call<&pktfilter_api::crash_next>();
      if (!quiet) fmt::print("  inject crash into pktfilter before packet {}\n", i);
    }
    const bool filter_sees = (p.proto == PKT_TCP || p.proto == PKT_UDP) && !example::management(&p);
    const bool dropped = filter_sees && p.dst_port == 23;
    auto res = stack.received().raise(&p, payload, sizeof payload);
    ++out.packets;
    expect_tcp += p.proto == PKT_TCP;
    expect_dns += p.proto == PKT_UDP && p.dst_port == 53;
    if (!res.failed.empty()) {
      out.handler_failures += static_cast<long>(res.failed.size());
      if (!quiet)
        fmt::print("      raise reports handler '{}' failed: {}; the other handlers ran\n", res.failed[0].binding,
                   res.failed[0].error.message());
      filter_seen_since_restart = 0;  // the fresh instance starts counting anew
      continue;
    }
    filter_seen_since_restart += filter_sees;
    (res.value == !dropped) ? ++out.verified : ++out.wrong;
    if (example::management(&p) && p.dst_port == 23 && p.proto == PKT_TCP && res.value) out.imposed_guard_held = true;
  }
  auto seen = (*filter)->call<&pktfilter_api::seen>();
  const bool counts_ok = stack.tcp_count() == expect_tcp && stack.dns_count() == expect_dns && seen &&
                         static_cast<long>(seen->unverified_value_i_trust_it()) == filter_seen_since_restart;
  // A domain that was not granted the log service calls it: a violation, never reaching the host.
  auto strict = Policy::builder().grant_none().build();
  auto probe = Instance<probe_api>::load(plugin_path("busy_log"), "probe_entry", *strict, "busy_log (no grants)");
  static constexpr probe_host counting{[](const char*) {}};
  if (probe && probe->call<&probe_api::init>(&counting)) {
    auto r = probe->call<&probe_api::run>(1L);
    out.ungranted_caught = !r && r.error().kind == Errc::violation;
    if (!quiet && !r) fmt::print("  ungranted service call: {}\n", r.error().message());
  }
  out.ok = counts_ok && out.wrong == 0 && out.handler_failures == 1 && out.refused_bind && out.ungranted_caught &&
           out.imposed_guard_held;
  if (!quiet)
    fmt::print("  {} packets dispatched: {} verdicts verified, {} wrong; tcp {} / dns {} / filter saw {} since its restart ({})\n",
               out.packets, out.verified, out.wrong, stack.tcp_count(), stack.dns_count(),
               seen ? seen->unverified_value_i_trust_it() : 0, counts_ok ? "all as expected" : "MISMATCH");
  return out;
}

int run_demo(bool quiet) {
  const auto start = Clock::now();
  auto pol = Policy::builder().timeout(300ms).memory(256ull << 20).handles(64).build();
  if (!pol) {
    fmt::print(stderr, "ward demo: {}\n", pol.error().message());
    return 2;
  }
  Journal journal;
  journal.verbose = !quiet;
  kvhost::live_buffers = 0;
  Supervisor sup({.max_restarts = 50, .window = 60s, .backoff_initial = 1ms, .backoff_max = 50ms}, journal.sink());
  auto kv = sup.load<kv_api>(plugin_path("kv"), "kv_entry", *pol);
  auto text = sup.load<textxform_api>(plugin_path("textxform"), "textxform_entry", *pol);
  auto dev = sup.load<device_api>(plugin_path("device"), "device_entry", *pol);
  auto sum = sup.load<checksum_api>(plugin_path("checksum"), "checksum_entry", *pol);
  for (const Error* e : {kv ? nullptr : &kv.error(), text ? nullptr : &text.error(), dev ? nullptr : &dev.error(),
                         sum ? nullptr : &sum.error()}) {
    if (e) {
      fmt::print(stderr, "ward demo: cannot load an example extension: {}\n", e->message());
      return 2;
    }
  }
  const device_config cfg{256, 32, 1.0, 0};
  auto t = (*kv)->call<&kv_api::init>(&kvhost::table);
  auto users = (*kv)->call<&kv_api::open_table>("users");
  if (!t || !users || !(*text)->call<&textxform_api::init>(&kTextHost, "upper") ||
      !(*dev)->call<&device_api::init>(&kDeviceHost) || !(*dev)->call<&device_api::configure>(&cfg)) {
    fmt::print(stderr, "ward demo: initialising the example extensions failed\n");
    return 2;
  }
  const std::uint64_t table = users->unverified_value_i_trust_it();
  fmt::print("ward demo: 4 supervised extensions, each in a sandboxed process domain\n");
  fmt::print("  kv pid {}, textxform pid {}, device pid {}, checksum pid {}\n", ward::pid_of((*kv)->domain()),
             ward::pid_of((*text)->domain()), ward::pid_of((*dev)->domain()), ward::pid_of((*sum)->domain()));
  fmt::print("  policy: {}\n\n", pol->describe());

  // The host's own model of what the kv plugin should hold.
  std::map<std::uint32_t, std::vector<std::uint8_t>> model;
  Tally tally;
  std::uint32_t next_key = 0;
  auto check = [&](bool ok) {
    ++tally.ops;
    ok ? ++tally.verified : ++tally.wrong;
  };

  auto kv_put = [&]() -> Result<void> {
    const std::uint32_t key = next_key++ % 200;
    std::vector<std::uint8_t> val(1 + key % 40);
    for (std::size_t i = 0; i < val.size(); ++i) val[i] = static_cast<std::uint8_t>(key * 13 + i);
    auto r = WARD_TRY((*kv)->call<&kv_api::put>(table, key, val.data(), val.size()));
    check(r.unverified_value_i_trust_it() == static_cast<long>(val.size()));
    model[key] = std::move(val);
    return {};
  };
  auto kv_get = [&](std::uint32_t key) -> Result<void> {
    std::uint8_t out[64] = {};
    const long n = WARD_TRY((*kv)->call<&kv_api::get>(table, key, out, sizeof out)).unverified_value_i_trust_it();
    auto it = model.find(key);
    if (it == model.end()) check(n == -2);
    else check(n == static_cast<long>(it->second.size()) && std::memcmp(out, it->second.data(), it->second.size()) == 0);
    return {};
  };
  auto other_work = [&](int round) {
    char out[64];
    const std::string in = fmt::format("round {} of the demo", round);
    std::string upper = in;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    auto x = (*text)->call<&textxform_api::transform>(in.c_str(), out, sizeof out);
    if (!x) ++tally.errors;
    else check(x->unverified_value_i_trust_it() == static_cast<long>(in.size()) && upper == out);
    std::uint8_t block[256], back[256];
    for (int i = 0; i < 256; ++i) block[i] = static_cast<std::uint8_t>(round * 7 + i);
    const std::uint32_t b = static_cast<std::uint32_t>(round % 32);
    auto w = (*dev)->call<&device_api::write>(b, block, sizeof block);
    auto r = (*dev)->call<&device_api::read>(b, back, sizeof back);
    if (!w || !r) ++tally.errors;
    else check(r->unverified_value_i_trust_it() == 256 && std::memcmp(block, back, 256) == 0);
    auto c = (*sum)->call<&checksum_api::crc32>(block, sizeof block);
    if (!c) ++tally.errors;
    else check(c->unverified_value_i_trust_it() == crc32_ref(block, sizeof block));
  };
  auto work = [&](int rounds) {
    for (int i = 0; i < rounds; ++i) {
      if (auto r = kv_put(); !r) ++tally.errors;
      if (auto r = kv_get(next_key % 200); !r) ++tally.errors;
      other_work(i);
    }
  };

  const std::vector<Fault> faults = {
      {"segfault", KV_FAULT_SEGV, 0, false, Errc::crashed},
      {"abort", KV_FAULT_ABORT, 0, true, Errc::crashed},
      {"infinite loop", KV_FAULT_HANG, 0, false, Errc::hung},
      {"wild write", KV_FAULT_WILD_WRITE, 0, true, Errc::crashed},
      {"forbidden syscall", KV_FAULT_SYSCALL, 0, false, Errc::violation},
      {"handle leak", KV_FAULT_HANDLE_LEAK, 0, false, Errc::limit},
      {"forged handle", KV_FAULT_FORGED, 0, true, Errc::violation},
      {"memory bomb", KV_FAULT_MEMORY, 0, false, Errc::limit},
      {"exit(3)", KV_FAULT_EXIT, 0, true, Errc::exited},
      {"SIGSEGV from outside", 0, SIGSEGV, false, Errc::crashed},
  };
  struct Outcome {
    const char* what;
    bool detected = false, transparent = false, error_to_caller = false;
    std::string kind;
  };
  std::vector<Outcome> outcomes;
  work(30);
  for (const Fault& f : faults) {
    Outcome o{f.what};
    const int failures_before = journal.failures, retried_before = journal.retried;
    const int errors_before = journal.errors_to_callers;
    const std::size_t causes_before = journal.causes.size();
    const long errors_seen = tally.errors;
    if (!quiet) fmt::print("  inject {:<22}", f.what);
    if (f.signal) {
      if (!quiet) fmt::print(" into textxform (kill -{} from outside), next call: transform (idempotent)\n", sigabbrev_np(f.signal));
      ::kill(ward::pid_of((*text)->domain()), f.signal);
      other_work(1000);
    } else {
      if (!quiet)
        fmt::print(" into kv, next call: {}\n", f.via_put ? "put (not idempotent)" : "get (idempotent)");
      (void)(*kv)->call<&kv_api::inject>(f.kv_fault);
      Result<void> r = f.via_put ? kv_put() : kv_get(3);
      if (!r) ++tally.errors;
      // A put that failed never completed (its caller got the error): the host retries it now.
      if (!r && f.via_put) {
        --next_key;
        if (auto again = kv_put(); !again) ++tally.errors;
      }
    }
    {
      std::lock_guard<std::mutex> g(journal.mu);
      o.detected = journal.failures > failures_before && journal.causes.size() > causes_before &&
                   journal.causes[causes_before].kind == f.expected;
      o.kind = journal.causes.size() > causes_before ? std::string(to_string(journal.causes[causes_before].kind)) : "none";
      // Transparent: the call that met the fault succeeded (retried, or resent because it
      // found the instance already dead before reaching it).
      o.error_to_caller = journal.errors_to_callers > errors_before;
      o.transparent = !o.error_to_caller && journal.restarts > 0 && tally.errors == errors_seen;
      (void)retried_before;
    }
    if (!o.detected && !quiet) fmt::print("      NOT DETECTED as {} (saw {})\n", to_string(f.expected), o.kind);
    outcomes.push_back(o);
    work(10);
  }
  work(30);
  // Every remaining key must read back as the model says, through however many restarts.
  for (const auto& [key, val] : model)
    if (auto r = kv_get(key); !r) ++tally.errors;

  const SpinOutcome spin = run_spin(sup, *pol, quiet);

  const long live_during = kvhost::live_buffers.load();  // the current kv instance's journal
  kv->reset();
  text->reset();
  dev->reset();
  sum->reset();
  const long leaked = kvhost::live_buffers.load();

  int detected = 0, transparent = 0, with_error = 0;
  for (const auto& o : outcomes) {
    detected += o.detected;
    transparent += o.detected && o.transparent;
    with_error += o.detected && o.error_to_caller;
  }
  auto ms = journal.recovery_ms;
  std::sort(ms.begin(), ms.end());
  const double median = ms.empty() ? 0 : ms[ms.size() / 2];
  const double worst = ms.empty() ? 0 : ms.back();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();

  fmt::print("\n  {:<40} {}\n", "faults injected", faults.size());
  fmt::print("  {:<40} {}\n", "detected (as the expected kind)", detected);
  fmt::print("  {:<40} {}\n", "recovered transparently (retried)", transparent);
  fmt::print("  {:<40} {}\n", "recovered, error to that caller", with_error);
  fmt::print("  {:<40} {}\n", "host crashes", 0);
  fmt::print("  {:<40} {} (released at recovery: {})\n", "leaked host objects", leaked, journal.released);
  fmt::print("  {:<40} median {:.2f} ms, worst {:.2f} ms ({} restarts)\n", "recovery time (detect -> ready)", median, worst,
             journal.restarts);
  fmt::print("  {:<40} {} ops: {} verified, {} wrong, {} errors reported\n", "workload", tally.ops, tally.verified,
             tally.wrong, tally.errors);
  fmt::print("  {:<40} {} keys, all read back after {} restarts\n", "kv state", model.size(), journal.restarts);
  fmt::print("  {:<40} {} packets, {} verdicts verified, {} wrong, {} handler failure reported, bind refused: {}, "
             "ungranted call caught: {}\n",
             "SPIN packet dispatch", spin.packets, spin.verified, spin.wrong, spin.handler_failures,
             spin.refused_bind ? "yes" : "NO", spin.ungranted_caught ? "yes" : "NO");
  fmt::print("  {:<40} {:.1f} s\n", "elapsed", secs);
  const bool ok = spin.ok && detected == static_cast<int>(faults.size()) && transparent + with_error == detected && leaked == 0 &&
                  live_during == 1 && tally.wrong == 0 && journal.disabled == 0 &&
                  tally.errors == with_error;  // the only errors are the ones returned on purpose
  fmt::print("\n{}\n", ok ? "OK: every fault was detected and recovered; nothing leaked; every result verified"
                          : "FAILED: see the lines above");
  return ok ? 0 : 1;
}

}  // namespace

void add_demo(CLI::App& app, int& exit_code) {
  auto quiet = std::make_shared<bool>(false);
  auto* c = app.add_subcommand("demo",
                               "Run a verified workload on supervised extensions while injecting every kind of failure");
  c->add_flag("-q,--quiet", *quiet, "Print only the summary");
  c->callback([quiet, &exit_code] { exit_code = run_demo(*quiet); });
}

}  // namespace ward::cli
