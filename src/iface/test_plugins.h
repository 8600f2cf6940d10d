// Shared by the interface tests: where the test plugins are built, and a policy with a short
// call timeout (a test that hangs fails in seconds).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "ward/core/policy.h"

namespace ward::test {

inline std::string plugin(const std::string& name) { return std::string(WARD_PLUGIN_DIR) + "/lib" + name + ".so"; }
inline std::string hostile_plugin(const std::string& name) {
  return std::string(WARD_PLUGIN_DIR) + "/hostile/lib" + name + ".so";
}

inline ward::Policy quick_policy() {
  auto p = ward::Policy::builder().timeout(std::chrono::seconds(2)).build();
  EXPECT_TRUE(p);
  return *p;
}

}  // namespace ward::test
