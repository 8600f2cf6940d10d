// A real plugin ABI with descriptors, unmodified: LADSPA plugins from Debian's ladspa-sdk.
// ladspa_descriptor(index) returns a struct of strings, PortCount-sized arrays (of ints, of
// strings, of structs) and function pointers; every descriptor of each plugin, read through ward,
// is compared field by field with the same plugin opened directly in this process.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <string>

#include "ladspa/ladspa_ward.h"

namespace {

using namespace std::chrono_literals;

class Ladspa : public testing::TestWithParam<const char*> {};

TEST_P(Ladspa, EveryDescriptorMatchesThePluginOpenedDirectly) {
  const std::string path = std::string("/usr/lib/ladspa/") + GetParam();
  void* direct = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(direct, nullptr) << dlerror();
  auto get = reinterpret_cast<LADSPA_Descriptor_Function>(dlsym(direct, "ladspa_descriptor"));
  ASSERT_NE(get, nullptr);
  auto policy = ward::Policy::builder().timeout(2s).build();
  ASSERT_TRUE(policy);
  auto lib = ward::Instance<ladspa_lib>::open(path, *policy);
  ASSERT_TRUE(lib) << lib.error().message();

  unsigned long index = 0;
  for (;; ++index) {
    const LADSPA_Descriptor* want = get(index);
    auto r = (*lib)->ladspa_descriptor(index);
    ASSERT_TRUE(r) << r.error().message();
    const ward::Deep<LADSPA_Descriptor>& got = r->unverified_value_i_trust_it();
    ASSERT_EQ(static_cast<bool>(got), want != nullptr) << "descriptor " << index;
    if (!want) break;
    SCOPED_TRACE(want->Label);
    EXPECT_EQ(got->UniqueID, want->UniqueID);
    EXPECT_STREQ(got->Label, want->Label);
    EXPECT_EQ(got->Properties, want->Properties);
    EXPECT_STREQ(got->Name, want->Name);
    EXPECT_STREQ(got->Maker, want->Maker);
    EXPECT_STREQ(got->Copyright, want->Copyright);
    ASSERT_EQ(got->PortCount, want->PortCount);
    for (unsigned long p = 0; p < want->PortCount; ++p) {
      EXPECT_EQ(got->PortDescriptors[p], want->PortDescriptors[p]) << "port " << p;
      EXPECT_STREQ(got->PortNames[p], want->PortNames[p]) << "port " << p;
      EXPECT_EQ(got->PortRangeHints[p].HintDescriptor, want->PortRangeHints[p].HintDescriptor) << "port " << p;
      // Bounds mean something only where the hint says so (some plugins leave the others
      // uninitialised, which differs between processes).
      const int hint = want->PortRangeHints[p].HintDescriptor;
      if (LADSPA_IS_HINT_BOUNDED_BELOW(hint)) {
        EXPECT_EQ(std::memcmp(&got->PortRangeHints[p].LowerBound, &want->PortRangeHints[p].LowerBound, sizeof(float)), 0);
      }
      if (LADSPA_IS_HINT_BOUNDED_ABOVE(hint)) {
        EXPECT_EQ(std::memcmp(&got->PortRangeHints[p].UpperBound, &want->PortRangeHints[p].UpperBound, sizeof(float)), 0);
      }
    }
    EXPECT_EQ(got->ImplementationData, nullptr);
    // Function pointers: never copied (null in the host's copy), present exactly where set.
    EXPECT_EQ(got->run, nullptr);
    EXPECT_EQ(got.has<&LADSPA_Descriptor::instantiate>(), want->instantiate != nullptr);
    EXPECT_EQ(got.has<&LADSPA_Descriptor::connect_port>(), want->connect_port != nullptr);
    EXPECT_EQ(got.has<&LADSPA_Descriptor::activate>(), want->activate != nullptr);
    EXPECT_EQ(got.has<&LADSPA_Descriptor::run>(), want->run != nullptr);
    EXPECT_EQ(got.has<&LADSPA_Descriptor::run_adding>(), want->run_adding != nullptr);
    EXPECT_EQ(got.has<&LADSPA_Descriptor::set_run_adding_gain>(), want->set_run_adding_gain != nullptr);
    EXPECT_EQ(got.has<&LADSPA_Descriptor::deactivate>(), want->deactivate != nullptr);
    EXPECT_EQ(got.has<&LADSPA_Descriptor::cleanup>(), want->cleanup != nullptr);
  }
  EXPECT_GT(index, 0u) << "the plugin has no descriptor";
  dlclose(direct);
}

INSTANTIATE_TEST_SUITE_P(DebianLadspaSdk, Ladspa,
                         testing::Values("amp.so", "delay.so", "filter.so", "noise.so", "sine.so"),
                         [](const testing::TestParamInfo<const char*>& info) {
                           std::string n = info.param;
                           return n.substr(0, n.find('.'));
                         });

}  // namespace
