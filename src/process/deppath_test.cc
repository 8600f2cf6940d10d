// A plugin's own shared-library dependencies resolve in the child as they do in the host: through
// the plugin's RUNPATH ($ORIGIN), through the host's LD_LIBRARY_PATH, and a dependency found
// nowhere fails the load with `load_failed` naming the missing object.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>

#include "interfaces.h"

namespace {

using namespace std::chrono_literals;

const std::string kDir = std::string(WARD_PLUGIN_DIR) + "/deppath";

ward::Policy quick_policy() {
  auto p = ward::Policy::builder().timeout(2s).build();
  EXPECT_TRUE(p);
  return *p;
}

// Sets LD_LIBRARY_PATH for this test and puts the old value back, also when the test fails.
class LibraryPathGuard {
 public:
  explicit LibraryPathGuard(const char* value) {
    if (const char* old = std::getenv("LD_LIBRARY_PATH")) old_ = old;
    if (value) ::setenv("LD_LIBRARY_PATH", value, 1);
    else ::unsetenv("LD_LIBRARY_PATH");
  }
  ~LibraryPathGuard() {
    if (old_) ::setenv("LD_LIBRARY_PATH", old_->c_str(), 1);
    else ::unsetenv("LD_LIBRARY_PATH");
  }
  LibraryPathGuard(const LibraryPathGuard&) = delete;
  LibraryPathGuard& operator=(const LibraryPathGuard&) = delete;

 private:
  std::optional<std::string> old_;
};

long run_one(const std::string& plugin) {
  auto p = ward::Instance<probe_api>::load(plugin, "probe_entry", quick_policy());
  if (!p) {
    ADD_FAILURE() << p.error().message();
    return -1;
  }
  auto r = p->call<&probe_api::run>(1L);
  if (!r) {
    ADD_FAILURE() << r.error().message();
    return -1;
  }
  return r->unverified_value_i_trust_it();
}

TEST(PluginDeps, FoundThroughThePluginsRunpath) {
  LibraryPathGuard none(nullptr);  // the RUNPATH alone must do it
  EXPECT_EQ(run_one(kDir + "/libdeppath_runpath.so"), 1001);
}

TEST(PluginDeps, FoundThroughTheHostsLibraryPath) {
  LibraryPathGuard path(("/nonexistent:" + kDir + "/ldpath").c_str());
  EXPECT_EQ(run_one(kDir + "/libdeppath_ldpath.so"), 2001);
}

TEST(PluginDeps, AMissingDependencyNamesItself) {
  LibraryPathGuard none(nullptr);
  auto p = ward::Instance<probe_api>::load(kDir + "/libdeppath_ldpath.so", "probe_entry", quick_policy());
  ASSERT_FALSE(p) << "loaded without its dependency";
  EXPECT_EQ(p.error().kind, ward::Errc::load_failed) << p.error().message();
  EXPECT_NE(p.error().message().find("libdeppath_leaf_ldpath.so"), std::string::npos) << p.error().message();
}

}  // namespace
