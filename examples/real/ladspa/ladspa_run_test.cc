// LADSPA plugins processing audio through ward: the stock amp.so and delay.so from ladspa-sdk,
// instantiated through their descriptor's function pointers (ward::Object), ports connected to
// sandbox memory (ward::shared), blocks of audio run and compared sample for sample (bitwise)
// with the same plugin run directly in this process. Then the child is killed between run()
// calls, and during them, under a Supervisor, and processing continues on the restarted child
// through the same descriptor, instance handle and port buffers (same addresses, same contents).
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "ladspa/ladspa_ward.h"
#include "recovery/random_kills.h"

namespace {

using namespace std::chrono_literals;

constexpr unsigned long kRate = 44100;
constexpr unsigned long kBlock = 512;

// A plugin and the control values the test sets (in port order, control inputs only).
struct Plugin {
  const char* file;
  const char* label;
  std::vector<float> controls;
};
const Plugin kAmp{"amp.so", "amp_mono", {0.5f}};
const Plugin kDelay{"delay.so", "delay_5s", {0.01f, 0.5f}};  // 441 samples' delay, half wet

void PrintTo(const Plugin& p, std::ostream* os) { *os << p.label; }

std::string path_of(const Plugin& p) { return std::string("/usr/lib/ladspa/") + p.file; }

ward::Policy policy() {
  auto p = ward::Policy::builder().timeout(2s).build();
  EXPECT_TRUE(p);
  return *p;
}

// Deterministic noise in [-1, 1): block b of the test signal.
std::vector<float> signal_block(unsigned b) {
  std::vector<float> v(kBlock);
  std::uint32_t x = 0x9e3779b9u * (b + 1);
  for (auto& s : v) {
    x = x * 1664525u + 1013904223u;
    s = static_cast<float>(x >> 8) / static_cast<float>(1u << 23) - 1.0f;
  }
  return v;
}

bool is_audio(LADSPA_PortDescriptor d) { return LADSPA_IS_PORT_AUDIO(d); }
bool is_input(LADSPA_PortDescriptor d) { return LADSPA_IS_PORT_INPUT(d); }

// The plugin opened with dlopen and run in this process: the reference.
class Direct {
 public:
  explicit Direct(const Plugin& p) : lib_(dlopen(path_of(p).c_str(), RTLD_NOW | RTLD_LOCAL)) {
    if (!lib_) return;
    auto get = reinterpret_cast<LADSPA_Descriptor_Function>(dlsym(lib_, "ladspa_descriptor"));
    for (unsigned long i = 0; get && (d_ = get(i)); ++i)
      if (std::strcmp(d_->Label, p.label) == 0) break;
    if (!d_) return;
    ports_.resize(d_->PortCount);
    std::size_t c = 0;
    for (unsigned long k = 0; k < d_->PortCount; ++k) {
      ports_[k].assign(is_audio(d_->PortDescriptors[k]) ? kBlock : 1, 0.0f);
      if (!is_audio(d_->PortDescriptors[k]) && is_input(d_->PortDescriptors[k])) ports_[k][0] = p.controls.at(c++);
    }
    start();
  }
  ~Direct() {
    stop();
    if (lib_) dlclose(lib_);
  }
  bool ok() const { return h_ != nullptr; }
  // A fresh instance, as after a restart of the extension (its state is gone).
  void start() {
    h_ = d_->instantiate(d_, kRate);
    for (unsigned long k = 0; k < d_->PortCount; ++k) d_->connect_port(h_, k, ports_[k].data());
    if (d_->activate) d_->activate(h_);
  }
  void stop() {
    if (!h_) return;
    if (d_->deactivate) d_->deactivate(h_);
    d_->cleanup(h_);
    h_ = nullptr;
  }
  // Runs one block; returns the first audio output.
  std::vector<float> run(const std::vector<float>& in) {
    for (unsigned long k = 0; k < d_->PortCount; ++k)
      if (is_audio(d_->PortDescriptors[k]) && is_input(d_->PortDescriptors[k])) ports_[k] = in;
    d_->run(h_, kBlock);
    for (unsigned long k = 0; k < d_->PortCount; ++k)
      if (is_audio(d_->PortDescriptors[k]) && !is_input(d_->PortDescriptors[k])) return ports_[k];
    return {};
  }

 private:
  void* lib_;
  const LADSPA_Descriptor* d_ = nullptr;
  LADSPA_Handle h_ = nullptr;
  std::vector<std::vector<float>> ports_;
};

// The index of the descriptor labelled `label` (read through ward), or -1.
template <class Lib>
long find_label(Lib& lib, const char* label) {
  for (unsigned long i = 0; i < 64; ++i) {
    auto r = lib->ladspa_descriptor(i);
    if (!r || !r->unverified_value_i_trust_it()) return -1;
    if (std::strcmp(r->unverified_value_i_trust_it()->Label, label) == 0) return static_cast<long>(i);
  }
  return -1;
}

// One port buffer per port, in sandbox memory: what the plugin keeps between calls.
struct Ports {
  std::vector<ward::Sandboxed<float>> bufs;
  std::vector<LADSPA_PortDescriptor> kinds;
};

template <class Owner>
testing::AssertionResult make_ports(Owner& owner, const ward::Deep<LADSPA_Descriptor>& d, const Plugin& p, Ports& ports) {
  std::size_t c = 0;
  for (unsigned long k = 0; k < d->PortCount; ++k) {
    const LADSPA_PortDescriptor kind = d->PortDescriptors[k];
    auto buf = owner.template alloc<float>(is_audio(kind) ? kBlock : 1);
    if (!buf) return testing::AssertionFailure() << buf.error().message();
    if (!is_audio(kind) && is_input(kind)) {
      if (auto w = buf->write(p.controls.at(c++)); !w) return testing::AssertionFailure() << w.error().message();
    }
    ports.bufs.push_back(std::move(*buf));
    ports.kinds.push_back(kind);
  }
  return testing::AssertionSuccess();
}

// Instantiates through the descriptor's own functions, connects every port to its buffer and
// activates: what a LADSPA host does, spelled as in C.
testing::AssertionResult start(const ward::Deep<LADSPA_Descriptor>& d, ward::Object<LADSPA_Descriptor>& obj,
                               Ports& ports, ward::Opaque<void>& handle) {
  auto h = obj->instantiate(nullptr, kRate);
  if (!h) return testing::AssertionFailure() << h.error().message();
  if (!*h) return testing::AssertionFailure() << "instantiate returned NULL";
  handle = *h;
  for (unsigned long k = 0; k < ports.bufs.size(); ++k)
    if (auto r = obj->connect_port(handle, k, ports.bufs[k]); !r) return testing::AssertionFailure() << r.error().message();
  if (!d.has<&LADSPA_Descriptor::activate>()) return testing::AssertionSuccess();  // optional in LADSPA
  if (auto r = obj->activate(handle); !r) return testing::AssertionFailure() << r.error().message();
  return testing::AssertionSuccess();
}

// Writes `in` to the audio input, runs one block, and returns the audio output's bytes.
ward::Result<std::vector<float>> run_block(ward::Object<LADSPA_Descriptor>& obj, Ports& ports, ward::Opaque<void> h,
                                           const std::vector<float>& in) {
  for (std::size_t k = 0; k < ports.bufs.size(); ++k)
    if (is_audio(ports.kinds[k]) && is_input(ports.kinds[k])) std::memcpy(ports.bufs[k].host_ptr(), in.data(), kBlock * 4);
  WARD_TRY(obj->run(h, kBlock));
  for (std::size_t k = 0; k < ports.bufs.size(); ++k)
    if (is_audio(ports.kinds[k]) && !is_input(ports.kinds[k])) {
      // Any float bit pattern is a float: the bytes are the plugin's output, compared bitwise.
      std::vector<float> out(kBlock);
      std::memcpy(out.data(), ports.bufs[k].host_ptr(), kBlock * 4);
      return out;
    }
  return std::vector<float>{};
}

testing::AssertionResult same_samples(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return testing::AssertionFailure() << got.size() << " samples, want " << want.size();
  for (std::size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0)
      return testing::AssertionFailure() << "sample " << i << ": " << got[i] << ", want " << want[i];
  return testing::AssertionSuccess();
}

class LadspaRun : public testing::TestWithParam<Plugin> {};

TEST_P(LadspaRun, BlocksMatchThePluginRunDirectly) {
  const Plugin& p = GetParam();
  Direct direct(p);
  ASSERT_TRUE(direct.ok());
  auto lib = ward::Instance<ladspa_lib>::open(path_of(p), policy());
  ASSERT_TRUE(lib) << lib.error().message();
  const long index = find_label(*lib, p.label);
  ASSERT_GE(index, 0);
  auto d = (*lib)->ladspa_descriptor(static_cast<unsigned long>(index));
  ASSERT_TRUE(d);
  const ward::Deep<LADSPA_Descriptor>& desc = d->unverified_value_i_trust_it();
  auto obj = desc.object();
  Ports ports;
  ASSERT_TRUE(make_ports(*lib, desc, p, ports));
  ward::Opaque<void> h;
  ASSERT_TRUE(start(desc, obj, ports, h));
  for (unsigned b = 0; b < 16; ++b) {
    const auto in = signal_block(b);
    auto got = run_block(obj, ports, h, in);
    ASSERT_TRUE(got) << got.error().message();
    ASSERT_TRUE(same_samples(*got, direct.run(in))) << "block " << b;
  }
  // The output is not the input (the plugin did something) and not silence.
  const auto in = signal_block(99);
  auto last = run_block(obj, ports, h, in);
  ASSERT_TRUE(last);
  EXPECT_FALSE(same_samples(*last, in));
  EXPECT_FALSE(same_samples(*last, std::vector<float>(kBlock, 0.0f)));
  if (desc.has<&LADSPA_Descriptor::deactivate>()) EXPECT_TRUE(obj->deactivate(h));
  else EXPECT_FALSE(obj->deactivate(h));  // left null by the plugin: refused, not called
  EXPECT_TRUE(obj->cleanup(h));
}

// Hostile and wrong uses fail loudly before anything is sent.
TEST(LadspaMisuse, PortsOutsideSandboxMemoryAndForgedHandlesAreRefused) {
  auto lib = ward::Instance<ladspa_lib>::open(path_of(kAmp), policy());
  ASSERT_TRUE(lib) << lib.error().message();
  auto d = (*lib)->ladspa_descriptor(0);
  ASSERT_TRUE(d);
  auto obj = d->unverified_value_i_trust_it().object();
  auto h = obj->instantiate(nullptr, kRate);
  ASSERT_TRUE(h) << h.error().message();
  // A host buffer: the plugin would keep a pointer it cannot use (ward::shared).
  std::vector<float> host(kBlock);
  auto c = obj->connect_port(*h, 1, host.data());
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().kind, ward::Errc::misuse) << c.error().message();
  // A handle the extension never returned.
  auto r = obj->run(reinterpret_cast<LADSPA_Handle>(0x5000), kBlock);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::misuse) << r.error().message();
  // The instance still works.
  auto buf = lib->alloc<float>(kBlock);
  ASSERT_TRUE(buf);
  EXPECT_TRUE(obj->connect_port(*h, 1, *buf));
}

// Under a Supervisor: the descriptor, the instance and its ports are set up once, through the
// Extension, and the child is SIGKILLed at random moments (between and during run() calls)
// while blocks are processed. After each restart the Supervisor replays ladspa_descriptor,
// instantiate, connect_port and activate into the new child, remaps the host's descriptor and
// instance handle to it, and the port buffers keep their addresses and contents. Every block's
// output is compared bitwise with the plugin run directly. A run() the kill interrupted returns
// the error (LADSPA's run is not idempotent) and the host sends the block again.
// State: amp is stateless, so its reference runs on unchanged. The restarted delay starts with an
// empty delay line: when a block's calls went through a restart, the reference is restarted too
// (stop, start) before it runs that block, which reproduces exactly what the new child computes.
TEST_P(LadspaRun, SupervisedProcessingSurvivesRandomKills) {
  const Plugin& p = GetParam();
  Direct direct(p);
  ASSERT_TRUE(direct.ok());
  ward::Supervisor sup({.max_restarts = 100000, .window = 1s});
  auto ext = sup.open<ladspa_lib>(path_of(p), policy());
  ASSERT_TRUE(ext) << ext.error().message();
  const long found = find_label(**ext, p.label);
  ASSERT_GE(found, 0);
  auto d = (**ext)->ladspa_descriptor(static_cast<unsigned long>(found));
  ASSERT_TRUE(d) << d.error().message();
  const ward::Deep<LADSPA_Descriptor>& desc = d->unverified_value_i_trust_it();
  auto obj = desc.object();
  Ports ports;
  ASSERT_TRUE(make_ports(**ext, desc, p, ports));
  std::vector<float*> addresses;
  for (auto& b : ports.bufs) addresses.push_back(b.in_extension());
  ward::Opaque<void> h;
  ASSERT_TRUE(start(desc, obj, ports, h));

  ward_test::RandomKills killer(**ext, 0x1adu, 3000us);  // recovery/random_kills.h
  unsigned resent = 0, reprimed = 0, b = 0;
  for (; b < 1000000 && (b < 400 || killer.kills() < 25); ++b) {
    const auto in = signal_block(b);
    const std::uint64_t restarts = (*ext)->stats().restarts;
    auto got = run_block(obj, ports, h, in);
    for (int attempt = 0; attempt < 3 && !got; ++attempt) {
      ASSERT_NE(got.error().kind, ward::Errc::misuse) << got.error().message();
      ++resent;
      got = run_block(obj, ports, h, in);
    }
    ASSERT_TRUE(got) << got.error().message();
    if ((*ext)->stats().restarts != restarts) {
      ++reprimed;
      direct.stop();
      direct.start();
    }
    ASSERT_TRUE(same_samples(*got, direct.run(in))) << "block " << b;
    killer.progress();
  }
  killer.stop();
  // The ports kept their addresses and the control values across every restart.
  for (std::size_t k = 0; k < ports.bufs.size(); ++k) EXPECT_EQ(ports.bufs[k].in_extension(), addresses[k]);
  auto control = ports.bufs[0].read();
  ASSERT_TRUE(control) << control.error().message();
  EXPECT_EQ(control->unverified_value_i_trust_it(), p.controls[0]);
  const auto s = (*ext)->stats();
  std::printf("%s: %u blocks, %llu kills, %llu restarts, %u blocks resent by the host, %u reference restarts\n",
              p.label, b, static_cast<unsigned long long>(killer.kills()), static_cast<unsigned long long>(s.restarts),
              resent, reprimed);
  EXPECT_GE(killer.kills(), 25u);
  EXPECT_GE(s.restarts + 1, killer.kills());  // the last kill may come after the last block
  EXPECT_FALSE((*ext)->disabled());
  // A kill after the last block is found by the next call, which gets the error (cleanup is not
  // idempotent); sent again, it reaches the restarted child and frees its instance.
  auto cleaned = obj->cleanup(h);
  if (!cleaned && s.restarts < killer.kills()) cleaned = obj->cleanup(h);
  EXPECT_TRUE(cleaned) << cleaned.error().message();
}

INSTANTIATE_TEST_SUITE_P(DebianLadspaSdk, LadspaRun, testing::Values(kAmp, kDelay),
                         [](const testing::TestParamInfo<Plugin>& info) { return std::string(info.param.label); });

}  // namespace
