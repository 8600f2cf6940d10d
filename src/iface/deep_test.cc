// Descriptors ([deep]): structs of strings, counted arrays, nested structs and function pointers
// that an extension returns or fills, deep-copied to the host (deep.h) and called through
// (object.h); and descriptors that are broken in every way a plugin can break them.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "deep_zoo.h"
#include "test_plugins.h"
#include "ward/ward.h"

WARD_STRUCT(zoo_port, (name, ward::text));
WARD_STRUCT(zoo_desc,
            (label, ward::text),
            (kinds, ward::array(&zoo_desc::nports)),
            (names, ward::array(&zoo_desc::nports)),
            (ports, ward::array(&zoo_desc::nports)),
            (main_range, ward::one),
            (comment, ward::text),
            (impl, ward::skip),
            (scale, ward::function),
            (sum, ward::function),
            (reserved, ward::function));
WARD_INTERFACE(zoo_desc,
               (scale, ward::self(0)),
               (sum, ward::self(0), ward::in(1, 2)));
WARD_STRUCT(zoo_info, (name, ward::text), (author, ward::text));

WARD_LIBRARY(zoo_lib,
             (zoo_descriptor, ward::returns_deep),
             (zoo_get_info, ward::out(0)));
WARD_LIBRARY(zoo_hostile_lib,
             (zoo_hostile, ward::returns_deep),
             (zoo_hostile_info, ward::out(0)));

namespace {

using ward::test::plugin;
using ward::test::quick_policy;

TEST(Deep, ADescriptorIsCopiedWithItsStringsArraysAndNestedStructs) {
  auto lib = ward::Instance<zoo_lib>::open(plugin("deep_zoo"), quick_policy());
  ASSERT_TRUE(lib) << lib.error().message();
  auto r = (*lib)->zoo_descriptor(0);
  ASSERT_TRUE(r) << r.error().message();
  const ward::Deep<zoo_desc>& d = r->unverified_value_i_trust_it();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->id, 1001u);
  EXPECT_STREQ(d->label, "amp");
  EXPECT_FALSE(d->stereo);
  EXPECT_STREQ(d->tag, "amp");
  ASSERT_EQ(d->nports, 3u);
  EXPECT_EQ(std::vector<int>(d->kinds, d->kinds + 3), (std::vector<int>{1, 2, 4}));
  EXPECT_STREQ(d->names[0], "In");
  EXPECT_STREQ(d->names[2], "Gain (dB)");
  EXPECT_STREQ(d->ports[2].name, "gain");
  EXPECT_EQ(d->ports[2].flags, 4);
  EXPECT_EQ(d->ports[2].range.lo, -60);
  EXPECT_EQ(d->ports[2].range.hi, 24);
  ASSERT_NE(d->main_range, nullptr);
  EXPECT_EQ(d->main_range->lo, -1);
  EXPECT_STREQ(d->comment, "a simple amplifier");
  EXPECT_EQ(d->impl, nullptr);  // skipped: never an extension address
  // Function pointers are never copied; whether they were set is recorded.
  EXPECT_EQ(d->scale, nullptr);
  EXPECT_TRUE(d.has<&zoo_desc::scale>());
  EXPECT_TRUE(d.has<&zoo_desc::sum>());
  EXPECT_FALSE(d.has<&zoo_desc::reserved>());

  // A copy outlives the original and the call.
  ward::Deep<zoo_desc> copy = d;
  auto second = (*lib)->zoo_descriptor(1);
  ASSERT_TRUE(second);
  const auto& p = second->unverified_value_i_trust_it();
  ASSERT_TRUE(p);
  EXPECT_STREQ(copy->names[1], "Out");
  EXPECT_TRUE(p->stereo);
  EXPECT_EQ(std::memcmp(p->tag, "pan\0xy", 6), 0);
  ASSERT_EQ(p->nports, 2u);
  EXPECT_STREQ(p->names[1], "");
  EXPECT_EQ(p->ports[1].name, nullptr);  // a null pointer stays null
  EXPECT_EQ(p->ports[1].range.hi, 4);
  EXPECT_EQ(p->main_range, nullptr);
  EXPECT_EQ(p->comment, nullptr);
  EXPECT_FALSE(p.has<&zoo_desc::sum>());

  auto past = (*lib)->zoo_descriptor(2);
  ASSERT_TRUE(past);
  EXPECT_FALSE(past->unverified_value_i_trust_it());
}

TEST(Deep, AnInfoStructTheExtensionFillsComesBackDeep) {
  auto lib = ward::Instance<zoo_lib>::open(plugin("deep_zoo"), quick_policy());
  ASSERT_TRUE(lib) << lib.error().message();
  ward::Deep<zoo_info> info;
  auto r = (*lib)->zoo_get_info(info.out());
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_TRUE(info);
  EXPECT_STREQ(info->name, "deep zoo");
  EXPECT_STREQ(info->author, "ward tests");
  EXPECT_EQ(info->version, 3);
  EXPECT_TRUE(info->experimental);
  // A plain pointer is not a Deep's landing place: refused before anything is sent.
  zoo_info plain{};
  auto bad = (*lib)->zoo_get_info(&plain);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, ward::Errc::misuse) << bad.error().message();
}

TEST(Deep, FunctionPointersAreCalledThroughTheObject) {
  auto lib = ward::Instance<zoo_lib>::open(plugin("deep_zoo"), quick_policy());
  ASSERT_TRUE(lib) << lib.error().message();
  auto r = (*lib)->zoo_descriptor(0);
  ASSERT_TRUE(r);
  auto obj = r->unverified_value_i_trust_it().object();
  // scale() reads self->id: the extension received the descriptor's own address.
  auto scaled = obj->scale(nullptr, 3);
  ASSERT_TRUE(scaled) << scaled.error().message();
  EXPECT_EQ(scaled->unverified_value_i_trust_it(), 3003);
  const int v[] = {5, 6, 7};
  auto sum = obj.call<&zoo_desc::sum>(nullptr, v, 3ul);
  ASSERT_TRUE(sum) << sum.error().message();
  EXPECT_EQ(sum->unverified_value_i_trust_it(), 18 + 3);

  auto r1 = (*lib)->zoo_descriptor(1);
  ASSERT_TRUE(r1);
  auto obj1 = r1->unverified_value_i_trust_it().object();
  auto s1 = obj1->scale(nullptr, 2);
  ASSERT_TRUE(s1);
  EXPECT_EQ(s1->unverified_value_i_trust_it(), 2004);
  // A function the extension left null is never called.
  auto none = obj1->sum(nullptr, v, 3ul);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().kind, ward::Errc::misuse);
  EXPECT_TRUE((*lib)->zoo_descriptor(0));  // the instance is fine
}

// An object from another instance names an address this instance never returned.
TEST(Deep, AnObjectFromAnotherInstanceIsRefused) {
  auto a = ward::Instance<zoo_lib>::open(plugin("deep_zoo"), quick_policy());
  auto b = ward::Instance<zoo_lib>::open(plugin("deep_zoo"), quick_policy());
  ASSERT_TRUE(a && b);
  auto r = (*a)->zoo_descriptor(0);
  ASSERT_TRUE(r);
  ward::detail::DeepValue forged = r->unverified_value_i_trust_it().value();
  forged.domain = &b->domain();
  auto s = ward::Object<zoo_desc>(forged)->scale(nullptr, 1);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind, ward::Errc::misuse) << s.error().message();
  // The copy of a Deep that was only data (no instance) cannot be called either.
  auto none = ward::Deep<zoo_desc>().object()->scale(nullptr, 1);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().kind, ward::Errc::misuse);
}

// ---- hostile descriptors ----------------------------------------------------------------------
struct Broken {
  int how;
  const char* what;  // expected in the message
};
std::ostream& operator<<(std::ostream& os, const Broken& b) { return os << b.how << " " << b.what; }

class Hostile : public testing::TestWithParam<Broken> {};

TEST_P(Hostile, IsAClearErrorNotACrash) {
  auto lib = ward::Instance<zoo_hostile_lib>::open(ward::test::hostile_plugin("deep_hostile"),
                                                   quick_policy());
  ASSERT_TRUE(lib) << lib.error().message();
  auto r = (*lib)->zoo_hostile(GetParam().how);
  ASSERT_FALSE(r) << "accepted descriptor " << GetParam().how;
  EXPECT_EQ(r.error().kind, ward::Errc::bad_data) << r.error().message();
  EXPECT_NE(r.error().detail.find(GetParam().what), std::string::npos) << r.error().detail;
  // Refused data does not end the extension: a sound descriptor still comes through.
  auto fine = (*lib)->zoo_hostile(0);
  ASSERT_TRUE(fine) << fine.error().message();
  EXPECT_STREQ(fine->unverified_value_i_trust_it()->label, "hostile");
}

INSTANTIATE_TEST_SUITE_P(
    Descriptors, Hostile,
    testing::Values(Broken{1, "zoo_desc::label points to memory the extension cannot read"},
                    Broken{2, "zoo_desc::kinds is too large"},
                    Broken{3, "zoo_desc::scale is a function pointer that does not point into code"},
                    Broken{4, "zoo_desc::comment points to memory the extension cannot read"},
                    Broken{5, "zoo_desc points to memory"},
                    Broken{6, "zoo_desc::comment is too large"},
                    Broken{7, "zoo_desc::kinds points to memory the extension cannot read"}),
    [](const testing::TestParamInfo<Broken>& info) { return "case" + std::to_string(info.param.how); });

TEST(Deep, BoolsInADescriptorAreNormalised) {
  auto lib = ward::Instance<zoo_hostile_lib>::open(ward::test::hostile_plugin("deep_hostile"),
                                                   quick_policy());
  ASSERT_TRUE(lib) << lib.error().message();
  auto r = (*lib)->zoo_hostile(8);
  ASSERT_TRUE(r) << r.error().message();
  unsigned char byte = 0xff;
  std::memcpy(&byte, &r->unverified_value_i_trust_it()->stereo, 1);
  EXPECT_EQ(byte, 1);
}

TEST(Deep, AWildPointerInAFilledStructIsRefused) {
  auto lib = ward::Instance<zoo_hostile_lib>::open(ward::test::hostile_plugin("deep_hostile"),
                                                   quick_policy());
  ASSERT_TRUE(lib) << lib.error().message();
  ward::Deep<zoo_info> info;
  auto r = (*lib)->zoo_hostile_info(info.out());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::bad_data) << r.error().message();
  EXPECT_NE(r.error().detail.find("zoo_info::author"), std::string::npos) << r.error().detail;
  EXPECT_FALSE(info);  // a failed call leaves the host's Deep untouched
}

}  // namespace
