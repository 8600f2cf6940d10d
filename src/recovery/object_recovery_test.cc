// Descriptor objects under a Supervisor (iface/object.h, recovery/detail/supervised_call.h): calls
// through a descriptor's function pointers recover like the interface's own, the descriptor and
// the instances made through it are remapped after a restart when their calls are replayed, and
// a descriptor that did not come back (its getter not replayed, or a different descriptor on
// replay) is refused, never called at an old address.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "object_lib.h"
#include "recovery/random_kills.h"
#include "ward/ward.h"

WARD_STRUCT(obj_desc,
            (label, ward::text),
            (instantiate, ward::function),
            (connect, ward::function),
            (run, ward::function),
            (crash, ward::function),
            (peek, ward::function));
WARD_INTERFACE(obj_desc,
               (instantiate, ward::self(0), ward::returns_opaque, ward::replay_after_restart),
               (connect, ward::opaque(0), ward::shared(2), ward::replay_after_restart),
               (run, ward::opaque(0), ward::idempotent),
               (crash, ward::opaque(0)),
               (peek, ward::self(0), ward::idempotent));
// The getter replayed after a restart: its descriptors are remapped.
WARD_LIBRARY(obj_lib,
             (obj_descriptor, ward::returns_deep, ward::idempotent, ward::replay_after_restart),
             (obj_poison));
// The same getter, not replayed: its descriptors go stale with the instance.
WARD_LIBRARY(obj_lib_unreplayed, (obj_descriptor, ward::returns_deep, ward::idempotent));

namespace {

using namespace std::chrono_literals;

constexpr unsigned long kBlock = 64;

std::string plugin() { return std::string(WARD_PLUGIN_DIR) + "/libobject_lib.so"; }

ward::Policy policy() {
  auto p = ward::Policy::builder().timeout(2s).build();
  EXPECT_TRUE(p);
  return *p;
}

ward::RestartPolicy many_restarts() { return {.max_restarts = 100000, .window = 1s}; }

// The descriptor at `index` and its object, through a supervised extension.
template <class Ext>
ward::Deep<obj_desc> descriptor(Ext& ext, unsigned long index) {
  auto d = ext->obj_descriptor(index);
  EXPECT_TRUE(d) << d.error().message();
  return d ? d->unverified_value_i_trust_it() : ward::Deep<obj_desc>();
}

// An instance of `d` with gain `gain` and its two ports in sandbox memory.
struct Plugged {
  ward::Opaque<void> handle;
  ward::Sandboxed<float> in, out;
};
template <class Ext>
testing::AssertionResult plug(Ext& ext, ward::Object<obj_desc>& obj, int gain, Plugged& p) {
  auto h = obj->instantiate(nullptr, gain);
  if (!h) return testing::AssertionFailure() << h.error().message();
  p.handle = *h;
  auto in = ext.template alloc<float>(kBlock);
  auto out = ext.template alloc<float>(kBlock);
  if (!in || !out) return testing::AssertionFailure() << "sandbox memory";
  p.in = std::move(*in);
  p.out = std::move(*out);
  for (unsigned long port = 0; port < 2; ++port)
    if (auto r = obj->connect(p.handle, port, port == 0 ? p.in : p.out); !r)
      return testing::AssertionFailure() << r.error().message();
  return testing::AssertionSuccess();
}

std::vector<float> block(unsigned b) {
  std::vector<float> v(kBlock);
  for (unsigned long k = 0; k < kBlock; ++k) v[k] = static_cast<float>((b * 131 + k * 7) % 997) / 17.0f - 20.0f;
  return v;
}

// out == in * gain + id, bit for bit (the plugin computes the same float expression).
testing::AssertionResult processed(const Plugged& p, const std::vector<float>& in, int gain, unsigned long id) {
  std::vector<float> out(kBlock);
  std::memcpy(out.data(), p.out.host_ptr(), kBlock * sizeof(float));
  for (unsigned long k = 0; k < kBlock; ++k) {
    const float want = in[k] * static_cast<float>(gain) + static_cast<float>(id);
    if (std::memcmp(&want, &out[k], sizeof want) != 0)
      return testing::AssertionFailure() << "sample " << k << ": " << out[k] << ", want " << want;
  }
  return testing::AssertionSuccess();
}

TEST(SupervisedObject, CallsThroughADescriptorAreRemappedAfterARestart) {
  ward::Supervisor sup(many_restarts());
  auto ext = sup.open<obj_lib>(plugin(), policy());
  ASSERT_TRUE(ext) << ext.error().message();
  auto d = descriptor(**ext, 0);
  ASSERT_TRUE(d);
  EXPECT_STREQ(d->label, "gain");
  auto obj = d.object();
  auto peek = obj->peek(nullptr);
  ASSERT_TRUE(peek) << peek.error().message();
  EXPECT_EQ(peek->unverified_value_i_trust_it(), 7);
  Plugged p;
  ASSERT_TRUE(plug(**ext, obj, 3, p));
  EXPECT_EQ((*ext)->stats().log_size, 4u);  // the getter, instantiate, two connects
  // Asking again for descriptors the log already re-creates, or for one past the last (null),
  // does not grow the log.
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(descriptor(**ext, 0));
  EXPECT_FALSE(descriptor(**ext, 2));
  EXPECT_EQ((*ext)->stats().log_size, 4u);

  for (int life = 0; life < 3; ++life) {
    const auto in = block(life);
    std::memcpy(p.in.host_ptr(), in.data(), kBlock * sizeof(float));
    auto r = obj->run(p.handle, kBlock);
    ASSERT_TRUE(r) << r.error().message();
    ASSERT_TRUE(processed(p, in, 3, 7)) << "life " << life;
    (*ext)->kill();
    // The next object call finds the failure, recovers (replaying the getter, instantiate and
    // both connects into the new child) and is retried there: the descriptor and the instance
    // handle now name the new child's objects, at addresses of its own.
    auto again = obj->peek(nullptr);
    ASSERT_TRUE(again) << again.error().message();
    EXPECT_EQ(again->unverified_value_i_trust_it(), 7);
  }
  EXPECT_EQ((*ext)->stats().restarts, 3u);
  const auto in = block(99);
  std::memcpy(p.in.host_ptr(), in.data(), kBlock * sizeof(float));
  auto r = obj->run(p.handle, kBlock);
  ASSERT_TRUE(r) << r.error().message();
  // A fresh instance in the new child: it counts its runs from one.
  EXPECT_EQ(r->unverified_value_i_trust_it(), 1);
  EXPECT_TRUE(processed(p, in, 3, 7));
}

// Random kills while blocks are processed through two descriptors' instances: every block is
// processed (run is idempotent: retried after the restart) and bit for bit right.
TEST(SupervisedObject, RandomKillsWhileProcessingKeepEveryResultRight) {
  ward::Supervisor sup(many_restarts());
  auto ext = sup.open<obj_lib>(plugin(), policy());
  ASSERT_TRUE(ext) << ext.error().message();
  auto d0 = descriptor(**ext, 0);
  auto d1 = descriptor(**ext, 1);
  ASSERT_TRUE(d0 && d1);
  auto o0 = d0.object();
  auto o1 = d1.object();
  Plugged p0, p1;
  ASSERT_TRUE(plug(**ext, o0, 3, p0));
  ASSERT_TRUE(plug(**ext, o1, -2, p1));

  ward_test::RandomKills killer(**ext, 20240610, 2000us);
  int errors = 0;
  unsigned b = 0;
  for (; b < 1000000 && (b < 300 || killer.kills() < 40); ++b) {
    for (int which = 0; which < 2; ++which) {
      Plugged& p = which == 0 ? p0 : p1;
      ward::Object<obj_desc>& o = which == 0 ? o0 : o1;
      const auto in = block(b * 2 + static_cast<unsigned>(which));
      ward::Result<ward::Tainted<long>> r = std::unexpected(ward::Error{});
      // A retry can be killed too: then the caller gets the error and sends the block again.
      for (int attempt = 0; attempt < 3 && !r; ++attempt) {
        std::memcpy(p.in.host_ptr(), in.data(), kBlock * sizeof(float));
        r = o->run(p.handle, kBlock);
        if (!r) {
          ++errors;
          ASSERT_NE(r.error().kind, ward::Errc::misuse) << r.error().message();
        }
      }
      ASSERT_TRUE(r) << r.error().message();
      ASSERT_TRUE(processed(p, in, which == 0 ? 3 : -2, which == 0 ? 7 : 100)) << "block " << b;
      killer.progress();
    }
  }
  killer.stop();
  const auto s = (*ext)->stats();
  std::printf("supervised objects: %u blocks, %llu kills, %llu restarts, %llu retried, %d errors resent by the host\n", b,
              static_cast<unsigned long long>(killer.kills()), static_cast<unsigned long long>(s.restarts), static_cast<unsigned long long>(s.retried), errors);
  EXPECT_GE(s.restarts + 1, killer.kills());  // the last kill may come after the last block
  EXPECT_GE(killer.kills(), 40u);
  EXPECT_FALSE((*ext)->disabled());
  EXPECT_EQ(s.log_size, 8u);
}

TEST(SupervisedObject, ACrashInsideAnObjectCallIsRecovered) {
  ward::Supervisor sup(many_restarts());
  auto ext = sup.open<obj_lib>(plugin(), policy());
  ASSERT_TRUE(ext) << ext.error().message();
  auto d = descriptor(**ext, 1);
  auto obj = d.object();
  Plugged p;
  ASSERT_TRUE(plug(**ext, obj, 5, p));
  for (int how = 1; how <= 3; ++how) {
    // Not idempotent: the caller gets the error; the extension is restarted behind it.
    auto c = obj->crash(p.handle, how);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().kind, how == 3 ? ward::Errc::exited : ward::Errc::crashed) << c.error().message();
    const auto in = block(static_cast<unsigned>(how));
    std::memcpy(p.in.host_ptr(), in.data(), kBlock * sizeof(float));
    auto r = obj->run(p.handle, kBlock);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_TRUE(processed(p, in, 5, 100));
  }
  EXPECT_EQ((*ext)->stats().restarts, 3u);
}

// A descriptor whose getter is not replayed does not survive a restart: calls through it are
// refused before anything is sent, and so are the instances made through it.
TEST(SupervisedObject, ADescriptorFromAnUnreplayedCallIsStaleAfterARestart) {
  ward::Supervisor sup(many_restarts());
  auto ext = sup.open<obj_lib_unreplayed>(plugin(), policy());
  ASSERT_TRUE(ext) << ext.error().message();
  auto d = descriptor(**ext, 0);
  auto obj = d.object();
  Plugged p;
  ASSERT_TRUE(plug(**ext, obj, 2, p));
  EXPECT_EQ((*ext)->stats().log_size, 0u);  // instantiate and connect: their object does not come back
  ASSERT_TRUE(obj->peek(nullptr));
  (*ext)->kill();
  auto stale = obj->peek(nullptr);  // finds the failure, recovers; the retry finds the object stale
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().kind, ward::Errc::misuse) << stale.error().message();
  EXPECT_NE(stale.error().detail.find("restarted"), std::string::npos) << stale.error().detail;
  EXPECT_NE(stale.error().function.find("obj_desc::peek"), std::string::npos) << stale.error().function;
  auto run = obj->run(p.handle, kBlock);
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().kind, ward::Errc::misuse) << run.error().message();
  EXPECT_EQ((*ext)->stats().restarts, 1u);
  // Asked for again, the descriptor is the new child's and works.
  auto fresh = descriptor(**ext, 0).object();
  auto peek = fresh->peek(nullptr);
  ASSERT_TRUE(peek) << peek.error().message();
  EXPECT_EQ(peek->unverified_value_i_trust_it(), 7);
  // The old instance handle belongs to the old child: refused through the fresh descriptor too.
  auto old = fresh->run(p.handle, kBlock);
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().kind, ward::Errc::misuse) << old.error().message();
  EXPECT_EQ((*ext)->stats().restarts, 1u);
}

// Hostile: the plugin hands out a different descriptor after a restart (here one without `run`
// before, one with it after). Its replay yields another object than the host holds: stale.
TEST(SupervisedObject, ADescriptorThatDiffersOnReplayIsStale) {
  ward::Supervisor sup(many_restarts());
  auto ext = sup.open<obj_lib>(plugin(), policy());
  ASSERT_TRUE(ext) << ext.error().message();
  ASSERT_TRUE((**ext)->obj_poison());  // not replayed: the next child's descriptors differ
  auto d = descriptor(**ext, 0);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d.has<&obj_desc::run>());
  auto obj = d.object();
  auto unset = obj->run(nullptr, kBlock);
  ASSERT_FALSE(unset);
  EXPECT_EQ(unset.error().kind, ward::Errc::misuse);  // left null: never sent
  ASSERT_TRUE(obj->peek(nullptr));
  (*ext)->kill();
  auto stale = obj->peek(nullptr);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().kind, ward::Errc::misuse) << stale.error().message();
  EXPECT_NE(stale.error().detail.find("restarted"), std::string::npos) << stale.error().detail;
  auto fresh = descriptor(**ext, 0);
  EXPECT_TRUE(fresh.has<&obj_desc::run>());
  EXPECT_TRUE(fresh.object()->peek(nullptr));
}

// A Deep whose token was tampered with names nothing the extension returned.
TEST(SupervisedObject, AForgedTokenIsRefused) {
  ward::Supervisor sup(many_restarts());
  auto ext = sup.open<obj_lib>(plugin(), policy());
  ASSERT_TRUE(ext) << ext.error().message();
  auto d = descriptor(**ext, 0);
  ward::detail::DeepValue forged = d.value();
  forged.supervised.token ^= 0x10;
  auto r = ward::Object<obj_desc>(forged)->peek(nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::misuse) << r.error().message();
  EXPECT_NE(r.error().detail.find("unknown"), std::string::npos) << r.error().detail;
  EXPECT_EQ((*ext)->stats().failures, 0u);
}

}  // namespace
