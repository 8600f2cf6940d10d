// A real video-filter ABI, unmodified: frei0r plugins from Debian's frei0r-plugins. Each plugin's
// info struct and parameter infos (strings the plugin owns, read as deep out-parameters) are
// compared with the same plugin dlopen'ed in this process; frames (pseudo-random, several sizes,
// parameters set) filtered through ward are compared bit for bit with the plugin run directly;
// then the same under a Supervisor with the child killed between frames.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "frei0r/frei0r_ward.h"

WARD_FREI0R_FIXED(frei0r_320x240, 320 * 240);

namespace {

using namespace std::chrono_literals;

ward::Policy policy() {
  auto p = ward::Policy::builder().timeout(10s).arena_size(8ull << 20).sandbox_memory(4ull << 20).build();
  EXPECT_TRUE(p) << p.error().message();
  return *p;
}

std::string plugin_path(const char* name) { return std::string("/usr/lib/frei0r-1/") + name; }

// The plugin opened in this process: the reference every ward result is compared with.
struct Direct {
  void* so = nullptr;
  decltype(&f0r_init) init = nullptr;
  decltype(&f0r_deinit) deinit = nullptr;
  decltype(&f0r_get_plugin_info) plugin_info = nullptr;
  decltype(&f0r_get_param_info) param_info = nullptr;
  decltype(&f0r_construct) construct = nullptr;
  decltype(&f0r_destruct) destruct = nullptr;
  decltype(&f0r_set_param_value) set_param = nullptr;
  decltype(&f0r_get_param_value) get_param = nullptr;
  decltype(&f0r_update) update = nullptr;

  explicit Direct(const std::string& path) : so(dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) {
    if (!so) return;
    bind(init, "f0r_init"), bind(deinit, "f0r_deinit"), bind(plugin_info, "f0r_get_plugin_info");
    bind(param_info, "f0r_get_param_info"), bind(construct, "f0r_construct");
    bind(destruct, "f0r_destruct"), bind(set_param, "f0r_set_param_value"), bind(update, "f0r_update");
    bind(get_param, "f0r_get_param_value");
    init();
  }
  ~Direct() {
    if (!so) return;
    deinit();
    dlclose(so);
  }
  Direct(const Direct&) = delete;
  Direct& operator=(const Direct&) = delete;
  bool ok() const { return so && init && update; }
  template <class F>
  void bind(F& f, const char* sym) {
    f = reinterpret_cast<F>(dlsym(so, sym));
  }
};

// One value per parameter, the same for ward and direct runs: mid-range doubles (distinct per
// index), a colour, a position. 16 bytes hold every non-string frei0r parameter type.
struct ParamValue {
  alignas(8) unsigned char bytes[16] = {};
};
ParamValue param_value(int type, int index) {
  ParamValue v;
  if (type == F0R_PARAM_BOOL || type == F0R_PARAM_DOUBLE) {
    const double d = type == F0R_PARAM_BOOL ? 1.0 : 0.35 + 0.1 * (index % 5);
    std::memcpy(v.bytes, &d, sizeof d);
  } else if (type == F0R_PARAM_COLOR) {
    const f0r_param_color_t c{0.2f, 0.5f, 0.8f};
    std::memcpy(v.bytes, &c, sizeof c);
  } else if (type == F0R_PARAM_POSITION) {
    const f0r_param_position_t p{0.25, 0.75};
    std::memcpy(v.bytes, &p, sizeof p);
  }
  return v;
}

// Deterministic pseudo-random frame (xorshift), different per seed.
std::vector<std::uint32_t> frame(unsigned w, unsigned h, std::uint32_t seed) {
  std::vector<std::uint32_t> f(static_cast<std::size_t>(w) * h);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& px : f) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    px = x;
  }
  return f;
}

template <class R>
auto value(const R& r) {
  EXPECT_TRUE(r) << r.error().message();
  return r->unverified_value_i_trust_it();
}

// A ward-side filter instance: frames and parameter slots in sandbox memory, one slot per
// parameter index (a Supervisor replays set_param_value with the slot's current contents).
template <class Ext>
struct WardFilter {
  Ext& lib;
  unsigned w, h;
  ward::Opaque<void> inst;
  ward::Sandboxed<std::uint32_t> in, out;
  std::vector<ward::Sandboxed<ParamValue>> params;

  static ward::Result<WardFilter> make(Ext& lib, unsigned w, unsigned h, int nparams) {
    WardFilter f{lib, w, h, {}, {}, {}, {}};
    f.inst = WARD_TRY(lib->f0r_construct(w, h));
    f.in = WARD_TRY(lib.template alloc<std::uint32_t>(std::size_t{w} * h));
    f.out = WARD_TRY(lib.template alloc<std::uint32_t>(std::size_t{w} * h));
    for (int p = 0; p < nparams; ++p) f.params.push_back(WARD_TRY(lib.template alloc<ParamValue>()));
    return f;
  }
  ward::Result<void> set(int index, const ParamValue& v) {
    WARD_TRY(params[index].write(v));
    WARD_TRY(lib->f0r_set_param_value(inst, params[index], index));
    return {};
  }
  // The plugin's value of parameter `index`, read back through a fresh sandbox slot.
  ward::Result<ParamValue> get(int index) {
    auto slot = WARD_TRY(lib.template alloc<ParamValue>());
    WARD_TRY(lib->f0r_get_param_value(inst, slot, index));
    return WARD_TRY(slot.read()).unverified_value_i_trust_it();
  }
  ward::Result<std::vector<std::uint32_t>> update(double t, const std::vector<std::uint32_t>& src) {
    std::memcpy(in.host_ptr(), src.data(), src.size() * 4);
    WARD_TRY(lib->f0r_update(inst, t, in, out));
    // The output is the extension's word: copied once, compared bit for bit by the caller.
    return std::vector<std::uint32_t>(out.host_ptr(), out.host_ptr() + src.size());
  }
};

// Sets every parameter to param_value() on both sides, the direct instance and ward's.
template <class Filter>
testing::AssertionResult set_params(const Direct& direct, f0r_instance_t d, Filter& f, int nparams) {
  for (int p = 0; p < nparams; ++p) {
    f0r_param_info_t pi{};
    direct.param_info(&pi, p);
    if (pi.type == F0R_PARAM_STRING) continue;  // left at the plugin's default on both sides
    ParamValue v = param_value(pi.type, p);
    direct.set_param(d, v.bytes, p);
    if (auto r = f.set(p, v); !r) return testing::AssertionFailure() << "param " << p << ": " << r.error().message();
    // Read back both ways: the plugin's stored value (possibly converted) must agree bit for bit.
    ParamValue want;  // zeroed: a plugin writes only its type's bytes
    direct.get_param(d, want.bytes, p);
    auto got = f.get(p);
    if (!got) return testing::AssertionFailure() << "get param " << p << ": " << got.error().message();
    const std::size_t size = pi.type == F0R_PARAM_COLOR      ? sizeof(f0r_param_color_t)
                             : pi.type == F0R_PARAM_POSITION ? sizeof(f0r_param_position_t)
                                                             : sizeof(double);
    if (std::memcmp(got->bytes, want.bytes, size) != 0)
      return testing::AssertionFailure() << "param " << p << " reads back differently";
  }
  return testing::AssertionSuccess();
}

class Frei0r : public testing::TestWithParam<const char*> {};

TEST_P(Frei0r, PluginAndParamInfosMatchThePluginOpenedDirectly) {
  Direct direct(plugin_path(GetParam()));
  ASSERT_TRUE(direct.ok()) << dlerror();
  auto lib = ward::Instance<frei0r_lib>::open(plugin_path(GetParam()), policy());
  ASSERT_TRUE(lib) << lib.error().message();
  EXPECT_EQ(value((*lib)->f0r_init()), 1);

  f0r_plugin_info_t want{};
  direct.plugin_info(&want);
  ward::Deep<f0r_plugin_info_t> got;
  ASSERT_TRUE((*lib)->f0r_get_plugin_info(got.out()));
  ASSERT_TRUE(got);
  EXPECT_STREQ(got->name, want.name);
  EXPECT_STREQ(got->author, want.author);
  EXPECT_EQ(got->plugin_type, want.plugin_type);
  EXPECT_EQ(got->color_model, want.color_model);
  EXPECT_EQ(got->frei0r_version, want.frei0r_version);
  EXPECT_EQ(got->major_version, want.major_version);
  EXPECT_EQ(got->minor_version, want.minor_version);
  EXPECT_EQ(got->num_params, want.num_params);
  EXPECT_STREQ(got->explanation, want.explanation);
  for (int p = 0; p < want.num_params; ++p) {
    f0r_param_info_t wp{};
    direct.param_info(&wp, p);
    ward::Deep<f0r_param_info_t> gp;
    ASSERT_TRUE((*lib)->f0r_get_param_info(gp.out(), p));
    EXPECT_STREQ(gp->name, wp.name) << "param " << p;
    EXPECT_EQ(gp->type, wp.type) << "param " << p;
    EXPECT_STREQ(gp->explanation, wp.explanation) << "param " << p;
  }
  EXPECT_TRUE((*lib)->f0r_deinit());
}

TEST_P(Frei0r, FramesMatchThePluginRunDirectlyBitForBit) {
  Direct direct(plugin_path(GetParam()));
  ASSERT_TRUE(direct.ok()) << dlerror();
  auto lib = ward::Instance<frei0r_lib>::open(plugin_path(GetParam()), policy());
  ASSERT_TRUE(lib) << lib.error().message();
  ASSERT_EQ(value((*lib)->f0r_init()), 1);
  f0r_plugin_info_t info{};
  direct.plugin_info(&info);
  ASSERT_EQ(info.plugin_type, F0R_PLUGIN_TYPE_FILTER);

  for (auto [w, h] : {std::pair{64u, 48u}, std::pair{320u, 240u}, std::pair{17u, 9u}}) {
    SCOPED_TRACE(std::to_string(w) + "x" + std::to_string(h));
    auto f = WardFilter<ward::Instance<frei0r_lib>>::make(*lib, w, h, info.num_params);
    ASSERT_TRUE(f) << f.error().message();
    f0r_instance_t d = direct.construct(w, h);
    ASSERT_NE(d, nullptr);
    ASSERT_TRUE(set_params(direct, d, *f, info.num_params));
    std::vector<std::uint32_t> want(std::size_t{w} * h);
    for (int n = 0; n < 4; ++n) {
      const auto src = frame(w, h, static_cast<std::uint32_t>(n + w));
      direct.update(d, n / 25.0, src.data(), want.data());
      auto got = f->update(n / 25.0, src);
      ASSERT_TRUE(got) << got.error().message();
      ASSERT_EQ(std::memcmp(got->data(), want.data(), want.size() * 4), 0) << "frame " << n;
    }
    direct.destruct(d);
    EXPECT_TRUE((*lib)->f0r_destruct(f->inst));
    // Destructed: the token is gone, a later use is refused before anything is sent.
    auto stale = (*lib)->f0r_update(f->inst, 0.0, f->in, f->out);
    ASSERT_FALSE(stale);
    EXPECT_EQ(stale.error().kind, ward::Errc::misuse) << stale.error().message();
  }
}

INSTANTIATE_TEST_SUITE_P(DebianFrei0rPlugins, Frei0r,
                         testing::Values("invert0r.so", "brightness.so", "IIRblur.so", "squareblur.so",
                                         "colorize.so"),
                         [](const testing::TestParamInfo<const char*>& info) {
                           std::string n = info.param;
                           return n.substr(0, n.find('.'));
                         });

// Frames must lie in sandbox memory: host memory, or a sandbox frame already freed, is refused
// (misuse) before the plugin sees it.
TEST(Frei0rHostile, FramesOutsideSandboxMemoryAreRefused) {
  auto lib = ward::Instance<frei0r_lib>::open(plugin_path("invert0r.so"), policy());
  ASSERT_TRUE(lib) << lib.error().message();
  ASSERT_TRUE((*lib)->f0r_init());
  auto f = WardFilter<ward::Instance<frei0r_lib>>::make(*lib, 64, 48, 0);
  ASSERT_TRUE(f) << f.error().message();
  std::vector<std::uint32_t> host(64 * 48);
  auto r = (*lib)->f0r_update(f->inst, 0.0, host.data(), f->out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::misuse) << r.error().message();
  std::uint32_t* freed = f->in;
  f->in.free();
  r = (*lib)->f0r_update(f->inst, 0.0, freed, f->out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::misuse) << r.error().message();
  // A token that was never handed out is refused too.
  r = (*lib)->f0r_update(ward::Opaque<void>{}, 0.0, f->out, f->out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::misuse) << r.error().message();
}

// A plugin whose info structs lie (examples/plugins/frei0r_hostile.c): an unmapped name, a wild
// pointer, a string with no terminator for 4 MiB. Each is refused as bad_data; the domain stays
// up and the honest parts keep working.
TEST(Frei0rHostile, LyingInfoStructsAreRefusedAndTheDomainStaysUp) {
  auto lib = ward::Instance<frei0r_lib>::open(std::string(WARD_PLUGIN_DIR) + "/libfrei0r_hostile.so", policy());
  ASSERT_TRUE(lib) << lib.error().message();
  ASSERT_EQ(value((*lib)->f0r_init()), 1);
  ward::Deep<f0r_plugin_info_t> info;
  auto r = (*lib)->f0r_get_plugin_info(info.out());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::bad_data) << r.error().message();
  for (int p = 0; p < 2; ++p) {
    ward::Deep<f0r_param_info_t> pi;
    auto q = (*lib)->f0r_get_param_info(pi.out(), p);
    ASSERT_FALSE(q) << "param " << p;
    EXPECT_EQ(q.error().kind, ward::Errc::bad_data) << q.error().message();
  }
  auto f = WardFilter<ward::Instance<frei0r_lib>>::make(*lib, 8, 4, 0);
  ASSERT_TRUE(f) << f.error().message();
  auto got = f->update(0.0, frame(8, 4, 1));
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ((*got)[0], frame(8, 4, 1)[0] ^ 0x00ffffffu);
}

// The copying alternative (one frame size fixed at compile time): the same bits, and a timing
// of both ways for the report.
TEST(Frei0rCopying, FixedSizeFramesCopiedInAndOutMatchAndAreTimed) {
  const char* name = "brightness.so";
  Direct direct(plugin_path(name));
  ASSERT_TRUE(direct.ok());
  auto copy = ward::Instance<frei0r_320x240>::open(plugin_path(name), policy());
  ASSERT_TRUE(copy) << copy.error().message();
  auto shared = ward::Instance<frei0r_lib>::open(plugin_path(name), policy());
  ASSERT_TRUE(shared) << shared.error().message();
  ASSERT_TRUE((*copy)->f0r_init() && (*shared)->f0r_init());
  auto ci = (*copy)->f0r_construct(320, 240);
  ASSERT_TRUE(ci) << ci.error().message();
  auto f = WardFilter<ward::Instance<frei0r_lib>>::make(*shared, 320, 240, 1);
  ASSERT_TRUE(f) << f.error().message();
  f0r_instance_t d = direct.construct(320, 240);
  const ParamValue v = param_value(F0R_PARAM_DOUBLE, 3);
  auto slot = copy->alloc<ParamValue>();
  ASSERT_TRUE(slot && slot->write(v));
  ASSERT_TRUE((*copy)->f0r_set_param_value(*ci, *slot, 0));
  ASSERT_TRUE(f->set(0, v));
  direct.set_param(d, const_cast<unsigned char*>(v.bytes), 0);

  const auto src = frame(320, 240, 7);
  std::vector<std::uint32_t> want(src.size()), got(src.size());
  direct.update(d, 0.0, src.data(), want.data());
  // Interleaved rounds, the fastest of each: the machine is shared, single rounds are noisy.
  constexpr int kFrames = 20, kRounds = 7;
  using clock = std::chrono::steady_clock;
  clock::duration best_copy = clock::duration::max(), best_shared = clock::duration::max();
  for (int round = 0; round < kRounds; ++round) {
    auto t0 = clock::now();
    for (int n = 0; n < kFrames; ++n) ASSERT_TRUE((*copy)->f0r_update(*ci, 0.0, src.data(), got.data()));
    auto t1 = clock::now();
    for (int n = 0; n < kFrames; ++n) {
      std::memcpy(f->in.host_ptr(), src.data(), src.size() * 4);  // what a host producing frames does
      ASSERT_TRUE((*shared)->f0r_update(f->inst, 0.0, f->in, f->out));
    }
    auto t2 = clock::now();
    best_copy = std::min(best_copy, t1 - t0), best_shared = std::min(best_shared, t2 - t1);
  }
  ASSERT_EQ(std::memcmp(got.data(), want.data(), want.size() * 4), 0);
  ASSERT_EQ(std::memcmp(f->out.host_ptr(), want.data(), want.size() * 4), 0);
  auto us = [](auto d) { return std::chrono::duration_cast<std::chrono::microseconds>(d).count() / kFrames; };
  std::printf("320x240 frame: copied in/out %lld us, sandbox frames in place %lld us\n",
              static_cast<long long>(us(best_copy)), static_cast<long long>(us(best_shared)));
  direct.destruct(d);
}

// Under a Supervisor: init, construct and set_param_value are replayed after a restart, so the
// instance token keeps working and the sandbox frames keep their addresses; the frames after
// each kill still match the plugin run directly.
TEST(Frei0rSupervised, FramesAfterAKillBetweenFramesStillMatch) {
  const char* name = "IIRblur.so";
  Direct direct(plugin_path(name));
  ASSERT_TRUE(direct.ok());
  ward::Supervisor sup(ward::RestartPolicy{.max_restarts = 10, .window = 10s});
  auto ext = sup.open<frei0r_lib>(plugin_path(name), policy());
  ASSERT_TRUE(ext) << ext.error().message();
  auto& x = **ext;
  ASSERT_EQ(value(x->f0r_init()), 1);
  f0r_plugin_info_t info{};
  direct.plugin_info(&info);
  auto f = WardFilter<std::remove_reference_t<decltype(x)>>::make(x, 64, 48, info.num_params);
  ASSERT_TRUE(f) << f.error().message();
  f0r_instance_t d = direct.construct(64, 48);
  ASSERT_TRUE(set_params(direct, d, *f, info.num_params));
  std::vector<std::uint32_t> want(64 * 48);
  for (int n = 0; n < 6; ++n) {
    if (n == 2 || n == 4) x.kill();
    const auto src = frame(64, 48, static_cast<std::uint32_t>(100 + n));
    direct.update(d, n / 25.0, src.data(), want.data());
    // The call finds the instance dead, recovers it and is retried (update is idempotent); its
    // frames' host addresses were taken from the dead instance's window, and the retry passes the
    // same allocations at the fresh instance's addresses.
    auto got = f->update(n / 25.0, src);
    ASSERT_TRUE(got) << "frame " << n << ": " << got.error().message();
    EXPECT_EQ(x.stats().restarts, static_cast<std::uint64_t>(n / 2)) << "frame " << n;
    ASSERT_EQ(std::memcmp(got->data(), want.data(), want.size() * 4), 0) << "frame " << n;
  }
  EXPECT_EQ(x.stats().restarts, 2u);
  EXPECT_TRUE(x->f0r_destruct(f->inst));
  direct.destruct(d);
}

}  // namespace
