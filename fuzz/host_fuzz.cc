// ward's fuzz host: libFuzzer drives the puppet plugin (examples/plugins/hostile/fuzz_puppet.c)
// through a real process domain, so every byte the host decodes from an extension is fuzzed:
// the channel message, upcall frames and their arguments, returned records, strings, handles,
// out/inout buffers and the fault record read when the extension dies.
//
// Input: byte 0 picks the plugin function, byte 1 sizes its out/inout buffer, the rest is the
// script the puppet runs. One domain stays loaded across inputs; it is restarted after any
// failure, and after an input that left the channel out of step (a probe call must come back
// clean), so each input starts from the same state.
//
// Invariants (a violation aborts, which libFuzzer reports with the input):
//   - the host never crashes and ASan/UBSan stay quiet (the build has both);
//   - every call ends in success or a ward::Error of a kind a hostile extension may cause
//     (crashed, exited, hung, violation, limit, bad_data), with a message, and the domain
//     reports itself failed afterwards;
//   - a failed call leaves the host's out/inout buffers untouched (shadow copies);
//   - a restarted domain loads and answers.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_puppet.h"
#include "ward/ward.h"

struct FzObject {
  int value = 7;
};

WARD_INTERFACE(fz_host,
               (log, ward::cstring(0)),
               (sum, ward::in(0, 1), ward::nullable(0)),
               (fill, ward::out(0, 1)),
               (twiddle, ward::inout(0, 1)),
               (echo, ward::in(1), ward::nullable(1)),
               (name, ward::returns_string),
               (grant),
               (use, ward::handle<FzObject>(0, ward::rights::read)),
               (again, ward::in(0, 1)),
               (denied));
WARD_INTERFACE(fz_api,
               (init, ward::services(0), ward::replay_after_restart),
               (run, ward::in(0, 1)),
               (run_rec, ward::in(0, 1)),
               (run_str, ward::in(0, 1), ward::returns_string),
               (run_out, ward::in(0, 1), ward::out(2, 3)),
               (run_inout, ward::in(0, 1), ward::inout(2, 3)),
               (run_bool, ward::in(0, 1)),
               (run_handle, ward::in(0, 1), ward::returns_handle<FzObject>(ward::rights::read)),
               (nested, ward::in(0, 1)));

// The puppet hard-codes these process/channel.h offsets.
namespace w = ward::wire;
static_assert(offsetof(w::Control, to_child) == 128 && offsetof(w::Control, to_host) == 192);
static_assert(offsetof(w::Doorbell, msg) == 16 && offsetof(w::Msg, frame_off) == 8);
static_assert(offsetof(w::Control, fault) == 256 && offsetof(w::Control, arena_size) == 16);
static_assert(static_cast<int>(w::MsgKind::ret) == 4 && static_cast<int>(w::MsgKind::upret) == 6);

namespace {

[[noreturn]] void broken(const std::string& what) {
  std::fprintf(stderr, "host_fuzz: invariant broken: %s\n", what.c_str());
  std::abort();
}

ward::Instance<fz_api>* g_plugin = nullptr;
int g_depth = 0;  // host services calling back into the plugin (bounded: the host's own stack)
std::uint64_t g_sink = 0;  // what host code computed from extension data (kept observable)

void expect_allowed(const ward::Error& e, const char* what) {
  using ward::Errc;
  switch (e.kind) {
    case Errc::crashed:
    case Errc::exited:
    case Errc::hung:
    case Errc::violation:
    case Errc::limit:
    case Errc::bad_data: break;
    default: broken(std::string(what) + ": error of a kind an extension cannot cause: " + e.message());
  }
  if (e.message().empty()) broken(std::string(what) + ": error without a message");
}

// ---- host services: they use every argument, as real host code would -------------------------
void svc_log(const char* msg) { g_sink += std::strlen(msg); }
std::int64_t svc_sum(const std::uint8_t* data, std::size_t n) {
  std::int64_t s = 0;
  for (std::size_t i = 0; data && i < n; ++i) s += data[i];
  return s;
}
std::int32_t svc_fill(std::uint8_t* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>(i ^ 0x5a);
  return static_cast<std::int32_t>(n);
}
std::int32_t svc_twiddle(fz_pair* io, std::int32_t n) {
  for (std::int32_t i = 0; i < n; ++i) io[i].n ^= 1;
  return n;
}
fz_rec svc_echo(fz_rec r, const fz_pair* p) {
  fz_rec out = r;
  out.ok = !r.ok;  // a host that reads the bool: an invalid one must never get here
  out.a = static_cast<std::int32_t>(static_cast<std::uint32_t>(r.a) + static_cast<std::uint32_t>(p ? p->n : 0));
  return out;
}
const char* svc_name(std::int32_t i) {
  static const std::string big(1 << 20, 'x');  // larger than what is left of a small arena
  switch (i & 3) {
    case 0: return nullptr;
    case 1: return "";
    case 2: return "a service name";
    default: return (i & 4) ? big.c_str() : "x";
  }
}
std::uint64_t svc_grant(std::uint32_t r) {
  ward::Domain* d = ward::Domain::calling();
  if (!d) broken("a host service ran outside a call");
  auto h = d->handles().grant(std::make_shared<FzObject>(), r);
  return h ? *h : 0;
}
std::int32_t svc_use(std::uint64_t h) {
  auto obj = ward::Domain::calling()->handles().lookup<FzObject>(h, ward::rights::read);
  if (!obj) broken("a handle the stub accepted does not resolve: " + obj.error().message());
  return (*obj)->value;
}
std::int64_t svc_again(const std::uint8_t* script, std::size_t n) {
  if (g_depth >= 3) return -1;
  ++g_depth;
  auto r = g_plugin->call<&fz_api::nested>(script, n);
  --g_depth;
  if (!r) {
    expect_allowed(r.error(), "nested call");
    return -2;
  }
  return r->unverified_value_i_trust_it();
}

std::int32_t svc_denied() { broken("a service the policy does not grant was run"); }

const fz_host k_host = {svc_log,  svc_sum, svc_fill, svc_twiddle, svc_echo,
                        svc_name, svc_grant, svc_use, svc_again,  svc_denied};

ward::Policy policy() {
  auto p = ward::Policy::builder();
  p.timeout(std::chrono::seconds(1)).memory(256ull << 20).arena_size(1 << 20).handles(64);
  // Everything but `denied`: the ungranted path is fuzzed too (through the stub and forged).
  for (const char* fn : {"log", "sum", "fill", "twiddle", "echo", "name", "grant", "use", "again"})
    p.grant(std::string("fz_host::") + fn);
  auto built = p.build();
  if (!built) broken("policy: " + built.error().message());
  return *built;
}

std::string puppet_path() {
  if (const char* env = std::getenv("WARD_FUZZ_PUPPET")) return env;
  return std::string(WARD_PLUGIN_DIR) + "/hostile/libfuzz_puppet.so";
}

const bool g_trace = std::getenv("WARD_FUZZ_TRACE") != nullptr;  // print each call's outcome
std::unique_ptr<ward::Instance<fz_api>> g_loaded;
std::uint64_t g_restarts = 0;

void restart() {
  g_plugin = nullptr;
  g_loaded.reset();  // ends the old child
  auto p = ward::Instance<fz_api>::load(puppet_path(), "fz_entry", policy(), "fuzz_puppet");
  if (!p) broken("the puppet does not load: " + p.error().message());
  g_loaded = std::make_unique<ward::Instance<fz_api>>(std::move(*p));
  g_plugin = g_loaded.get();
  auto init = g_plugin->call<&fz_api::init>(&k_host);
  if (!init) broken("the puppet's init failed: " + init.error().message());
  ++g_restarts;
  if (g_trace) std::fprintf(stderr, "host_fuzz: %.3f restarted\n", ward::wire::mono_ns() / 1e9);
}

// A call ended: either it succeeded, or it failed with an allowed kind and the domain is dead.
template <class R>
bool settle(const R& r, const char* fn) {
  if (g_trace) std::fprintf(stderr, "host_fuzz: %.3f %s: %s\n", ward::wire::mono_ns() / 1e9, fn, r ? "ok" : r.error().message().c_str());
  if (r) return true;
  expect_allowed(r.error(), fn);
  if (g_plugin->domain().alive()) broken(std::string(fn) + ": failed but the domain is still alive: " + r.error().message());
  return false;
}

void use_record(const fz_rec& r) {
  // Reading every field, the bool included, is what host code does with a record.
  g_sink += static_cast<std::uint64_t>(r.a) + r.tag + r.s + (r.ok ? 1 : 0) + static_cast<std::uint64_t>(r.d != 0.0);
}

void run_one(const std::uint8_t* data, std::size_t size) {
  const std::uint8_t selector = size > 0 ? data[0] : 0;
  const std::size_t m = size > 1 ? data[1] : 0;
  const std::uint8_t* script = size > 2 ? data + 2 : data;
  const std::size_t n = size > 2 ? size - 2 : 0;
  auto& p = *g_plugin;
  switch (selector % 8) {
    case 0: (void)settle(p.call<&fz_api::run>(script, n), "run"); break;
    case 1: {
      auto r = p.call<&fz_api::run_rec>(script, n);
      if (settle(r, "run_rec")) use_record(r->unverified_value_i_trust_it());
      break;
    }
    case 2: {
      auto r = p.call<&fz_api::run_str>(script, n);
      if (settle(r, "run_str") && r->unverified_value_i_trust_it()) {
        const std::string& s = *r->unverified_value_i_trust_it();
        if (s.size() > p.domain().frame_capacity()) broken("a returned string longer than the arena");
        if (s.find('\0') != std::string::npos) broken("a returned string with an embedded NUL");
      }
      break;
    }
    case 3:
    case 4: {
      // Out and inout buffers: on failure the host's memory must be exactly as before.
      std::vector<std::uint8_t> out(m, 0xee);
      std::vector<fz_pair> io(m, fz_pair{1.5f, 40});
      const auto out0 = out;
      const auto io0 = io;
      if (selector % 8 == 3) {
        auto r = p.call<&fz_api::run_out>(script, n, out.data(), out.size());
        if (!settle(r, "run_out") && out != out0) broken("a failed call changed the host's out buffer");
      } else {
        auto r = p.call<&fz_api::run_inout>(script, n, io.data(), io.size());
        if (!settle(r, "run_inout") && !io.empty() && std::memcmp(io.data(), io0.data(), io.size() * sizeof(fz_pair)) != 0)
          broken("a failed call changed the host's inout buffer");
      }
      break;
    }
    case 5: {
      auto r = p.call<&fz_api::run_bool>(script, n);
      if (settle(r, "run_bool")) g_sink += r->unverified_value_i_trust_it() ? 1 : 0;
      break;
    }
    case 6: {
      auto r = p.call<&fz_api::run_handle>(script, n);
      if (settle(r, "run_handle")) {
        // The stub accepted it: it must name a live object of the declared type and rights.
        auto obj = p.domain().handles().lookup<FzObject>(r->unverified_value_i_trust_it(), ward::rights::read);
        if (!obj) broken("run_handle: a returned handle passed the check but does not resolve");
      }
      break;
    }
    default: (void)settle(p.call<&fz_api::nested>(script, n), "nested"); break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (!g_plugin) restart();
  run_one(data, size);
  // Same state for the next input: a dead domain is replaced, and a live one must answer a
  // clean call (an input that forged messages leaves the channel out of step otherwise).
  bool clean = g_plugin->domain().alive();
  if (clean) {
    auto probe = g_plugin->call<&fz_api::run>(static_cast<const std::uint8_t*>(nullptr), std::size_t{0});
    clean = probe && probe->unverified_value_i_trust_it() == 0;
    if (!probe) expect_allowed(probe.error(), "probe");
  }
  if (!clean) restart();
  return 0;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::atexit([] {
    if (std::getenv("WARD_FUZZ_STATS"))
      std::fprintf(stderr, "host_fuzz: %llu domain starts\n", static_cast<unsigned long long>(g_restarts));
    g_plugin = nullptr;
    g_loaded.reset();
  });
  return 0;
}
