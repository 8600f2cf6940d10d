#include "ward/core/error.h"

#include <gtest/gtest.h>

namespace {

TEST(Error, MessageNamesPluginFunctionKindAndCause) {
  ward::Error e;
  e.kind = ward::Errc::crashed;
  e.plugin = "libdevice.so";
  e.function = "device_api::write";
  e.detail = "killed by SIGSEGV";
  EXPECT_EQ(e.message(), "libdevice.so (device_api::write): crashed: killed by SIGSEGV");
  e.earlier = true;
  EXPECT_NE(e.message().find("already failed"), std::string::npos);
}

TEST(Error, EveryKindHasAName) {
  for (auto k : {ward::Errc::crashed, ward::Errc::exited, ward::Errc::hung, ward::Errc::violation, ward::Errc::limit,
                 ward::Errc::bad_data, ward::Errc::load_failed, ward::Errc::misuse})
    EXPECT_NE(ward::to_string(k), "unknown");
}

TEST(Error, FailBuildsAnUnexpected) {
  ward::Result<int> r = ward::fail(ward::Errc::misuse, "nope");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::misuse);
  EXPECT_EQ(r.error().detail, "nope");
}

}  // namespace
