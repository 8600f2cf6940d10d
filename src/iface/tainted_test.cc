#include "ward/core/tainted.h"

#include <gtest/gtest.h>

#include <string>

namespace {

TEST(Tainted, VerifyAcceptsOrRejectsWithBadData) {
  ward::Tainted<long> t(42);
  auto ok = t.verify([](long v) { return v >= 0 && v < 100; }, "length");
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 42);
  auto bad = t.verify([](long v) { return v < 0; }, "length");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, ward::Errc::bad_data);
  EXPECT_NE(bad.error().detail.find("length"), std::string::npos);
}

TEST(Tainted, CopyAndVerifyTransforms) {
  ward::Tainted<int> t(1000);
  const int clamped = t.copy_and_verify([](int v) { return v > 255 ? 255 : v; });
  EXPECT_EQ(clamped, 255);
}

TEST(Tainted, MovesOutOfRvalues) {
  auto r = ward::Tainted<std::string>("abc").verify([](const std::string& s) { return s.size() == 3; });
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "abc");
}

}  // namespace
