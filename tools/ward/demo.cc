// `ward demo`: a host runs a verified workload on three example plugins while misbehaving
// plugins crash, hang, write wildly, make forbidden system calls, exit and exhaust memory next to
// it. Each fault is contained in its own domain and reported by kind; the host carries on (it
// reloads a failed plugin itself: automatic restart is the recovery issue's work). Exit code 0
// when every fault was detected as the expected kind and the workload verified.
#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "interfaces.h"
#include "paths.h"

namespace ward::cli {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

int g_logs = 0;
void demo_log(const char*) { ++g_logs; }
std::uint64_t demo_now() { return static_cast<std::uint64_t>(Clock::now().time_since_epoch().count()); }
constexpr text_host kTextHost{demo_log};
constexpr device_host kDeviceHost{demo_log, demo_now};
constexpr probe_host kProbeHost{demo_log};

struct Workload {
  int ops = 0, verified = 0, failed = 0;
};

std::uint32_t crc32_ref(const std::uint8_t* p, std::size_t n) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

// One round of real work on the well-behaved plugins, each result checked against the host's own
// computation.
void work_round(Plugin<textxform_api>& text, Plugin<device_api>& dev, Plugin<checksum_api>& sum, int round, Workload& w) {
  auto check = [&](bool ok) {
    ++w.ops;
    ok ? ++w.verified : ++w.failed;
  };
  char out[64];
  const std::string in = fmt::format("round {} of the demo", round);
  auto t = text.call<&textxform_api::transform>(in.c_str(), out, sizeof out);
  std::string upper = in;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  check(t && t->unverified_value_i_trust_it() == static_cast<long>(in.size()) && upper == out);

  std::uint8_t block[256], back[256];
  for (int i = 0; i < 256; ++i) block[i] = static_cast<std::uint8_t>(round * 7 + i);
  const std::uint32_t b = static_cast<std::uint32_t>(round % 32);
  auto wr = dev.call<&device_api::write>(b, block, sizeof block);
  auto rd = dev.call<&device_api::read>(b, back, sizeof back);
  check(wr && rd && rd->unverified_value_i_trust_it() == 256 && std::memcmp(block, back, 256) == 0);

  auto c = sum.call<&checksum_api::crc32>(block, sizeof block);
  check(c && c->unverified_value_i_trust_it() == crc32_ref(block, sizeof block));
}

struct Fault {
  const char* what;
  const char* plugin;
  Errc expected;
  bool via_poke;  // the misbehaviour is in poke() (wild write) rather than run()
};

struct Outcome {
  std::string what;
  bool detected = false;
  std::string kind, detail;
  double detect_ms = 0;
  bool host_carried_on = false;
};

int run_demo(bool quiet) {
  const auto start = Clock::now();
  auto pol = Policy::builder().timeout(500ms).memory(256ull << 20).build();
  if (!pol) {
    fmt::print(stderr, "ward demo: {}\n", pol.error().message());
    return 2;
  }
  auto text = Plugin<textxform_api>::load(plugin_path("textxform"), "textxform_entry", *pol);
  auto dev = Plugin<device_api>::load(plugin_path("device"), "device_entry", *pol);
  auto sum = Plugin<checksum_api>::load(plugin_path("checksum"), "checksum_entry", *pol);
  for (const auto* e : {text ? nullptr : &text.error(), dev ? nullptr : &dev.error(), sum ? nullptr : &sum.error()}) {
    if (e) {
      fmt::print(stderr, "ward demo: cannot load an example plugin: {}\n", e->message());
      return 2;
    }
  }
  const device_config cfg{256, 32, 1.0, 0};
  if (!text->call<&textxform_api::init>(&kTextHost, "upper") || !dev->call<&device_api::init>(&kDeviceHost) ||
      !dev->call<&device_api::configure>(&cfg)) {
    fmt::print(stderr, "ward demo: initialising the example plugins failed\n");
    return 2;
  }
  fmt::print("ward demo: 3 plugins in sandboxed process domains (textxform pid {}, device pid {}, checksum pid {})\n",
             text->domain().pid(), dev->domain().pid(), sum->domain().pid());
  fmt::print("policy: {}\n\n", pol->describe());

  const std::vector<Fault> faults = {
      {"segfault", "crash_segv", Errc::crashed, false},
      {"abort", "crash_abort", Errc::crashed, false},
      {"infinite loop", "hang_loop", Errc::hung, false},
      {"wild write", "wild_write", Errc::crashed, true},
      {"open a file", "syscall_open", Errc::violation, false},
      {"fork", "syscall_fork", Errc::violation, false},
      {"connect a socket", "syscall_connect", Errc::violation, false},
      {"exit(7)", "exit_call", Errc::exited, false},
      {"allocation bomb", "alloc_bomb", Errc::limit, false},
  };
  Workload w;
  std::vector<Outcome> outcomes;
  int round = 0;
  for (const Fault& f : faults) {
    for (int i = 0; i < 20; ++i) work_round(*text, *dev, *sum, round++, w);
    Outcome o;
    o.what = f.what;
    auto probe = Plugin<probe_api>::load(plugin_path(f.plugin), "probe_entry", *pol, f.plugin);
    if (!probe) {
      o.kind = "load failed";
      o.detail = probe.error().message();
      outcomes.push_back(o);
      continue;
    }
    (void)probe->call<&probe_api::init>(&kProbeHost);
    const auto t0 = Clock::now();
    Result<Tainted<long>> r = f.via_poke ? [&] {
      unsigned char buf[64];
      return probe->call<&probe_api::poke>(buf, sizeof buf);
    }()
                                         : probe->call<&probe_api::run>(1L);
    o.detect_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (!r) {
      o.detected = r.error().kind == f.expected;
      o.kind = std::string(to_string(r.error().kind));
      o.detail = r.error().detail;
    } else {
      o.kind = "not detected";
    }
    // The host carries on: the healthy plugins keep working right after the fault.
    Workload after;
    work_round(*text, *dev, *sum, round++, after);
    o.host_carried_on = after.failed == 0;
    w.ops += after.ops;
    w.verified += after.verified;
    w.failed += after.failed;
    if (!quiet)
      fmt::print("  injected {:<17} -> {:<16} {:<55} ({:.1f} ms); host carries on: {}\n", o.what, o.kind, o.detail,
                 o.detect_ms, o.host_carried_on ? "yes" : "NO");
    outcomes.push_back(o);
  }
  for (int i = 0; i < 20; ++i) work_round(*text, *dev, *sum, round++, w);

  int detected = 0, carried = 0;
  for (const auto& o : outcomes) {
    detected += o.detected;
    carried += o.host_carried_on;
  }
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  fmt::print("\n{:<34} {}\n", "faults injected", faults.size());
  fmt::print("{:<34} {}\n", "detected as the expected kind", detected);
  fmt::print("{:<34} {}\n", "host carried on after", carried);
  fmt::print("{:<34} {}\n", "host crashes", 0);
  fmt::print("{:<34} {} ops, {} verified, {} failed\n", "workload", w.ops, w.verified, w.failed);
  fmt::print("{:<34} {}\n", "host service calls from plugins", g_logs);
  fmt::print("{:<34} {:.2f} s\n", "elapsed", secs);
  const bool ok = detected == static_cast<int>(faults.size()) && carried == static_cast<int>(faults.size()) &&
                  w.failed == 0;
  fmt::print("\n{}\n", ok ? "OK: every fault was contained and the workload verified"
                          : "FAILED: see the lines above");
  return ok ? 0 : 1;
}

}  // namespace

void add_demo(CLI::App& app, int& exit_code) {
  auto quiet = std::make_shared<bool>(false);
  auto* c = app.add_subcommand("demo", "Run plugins beside misbehaving ones and show every fault contained");
  c->add_flag("-q,--quiet", *quiet, "Print only the summary");
  c->callback([quiet, &exit_code] { exit_code = run_demo(*quiet); });
}

}  // namespace ward::cli
