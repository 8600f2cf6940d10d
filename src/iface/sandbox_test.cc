// Sandbox memory (iface/sandbox.h): allocations the extension keeps pointers into between calls,
// passed in place; the host allocator against an extension that scribbles over its arena; misuse
// and exhaustion as values; and, under a Supervisor, contents and addresses across a restart.
#include "ward/iface/sandbox.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "sandbox_lib.h"
#include "ward/iface/instance.h"
#include "ward/recovery/supervisor.h"

WARD_INTERFACE(sandbox_lib_api,
               (connect, ward::shared(1, 2), ward::replay_after_restart),
               (run, ward::idempotent),
               (stream_step, ward::shared(0)),
               (port_addr),
               (seen, ward::in(0, 1)),
               (fill, ward::out(0, 1)),
               (scribble));

namespace {

using namespace std::chrono_literals;
using Lib = ward::Instance<sandbox_lib_api>;

std::string plugin() { return std::string(WARD_PLUGIN_DIR) + "/libsandbox_lib.so"; }

ward::Policy policy(std::uint64_t sandbox = 1u << 20) {
  auto p = ward::Policy::builder().timeout(2s).memory(256ull << 20).sandbox_memory(sandbox).build();
  EXPECT_TRUE(p) << p.error().message();
  return *p;
}

Lib load(ward::Policy p = policy()) {
  auto lib = Lib::load(plugin(), "sandbox_lib_entry", std::move(p));
  EXPECT_TRUE(lib) << lib.error().message();
  return std::move(*lib);
}

std::uint64_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

template <class R>
auto value(R&& r) {
  EXPECT_TRUE(r) << r.error().message();
  return r->unverified_value_i_trust_it();
}

template <class T>
T at(const ward::Sandboxed<T>& s, std::size_t i) {
  auto r = s.read(i);
  EXPECT_TRUE(r) << r.error().message();
  return r ? r->unverified_value_i_trust_it() : T{};
}

TEST(Sandbox, ConnectedBuffersAreKeptAndProcessedInPlace) {
  Lib lib = load();
  auto a = lib.alloc<float>(16);
  auto b = lib.alloc<float>(16);
  ASSERT_TRUE(a && b);
  for (int i = 0; i < 16; ++i) {
    a->host_ptr()[i] = static_cast<float>(i);
    ASSERT_TRUE(b->write(static_cast<std::size_t>(i), 100.0f + static_cast<float>(i)));
  }
  EXPECT_EQ(value(lib.call<&sandbox_lib_api::connect>(0, *a, 16)), 0);
  EXPECT_EQ(value(lib.call<&sandbox_lib_api::connect>(1, *b, 8)), 0);
  // The library holds the addresses the extension sees, not copies on the frame stack.
  EXPECT_EQ(value(lib.call<&sandbox_lib_api::port_addr>(0)), addr(a->in_extension()));
  EXPECT_EQ(value(lib.call<&sandbox_lib_api::port_addr>(1)), addr(b->in_extension()));
  EXPECT_EQ(value(lib.call<&sandbox_lib_api::run>(16)), 2);
  EXPECT_EQ(value(lib.call<&sandbox_lib_api::run>(16)), 2);
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(at(*a, static_cast<std::size_t>(i)), (static_cast<float>(i) * 2 + 1) * 2 + 1) << i;
    const float b0 = 100.0f + static_cast<float>(i);
    EXPECT_EQ(at(*b, static_cast<std::size_t>(i)), i < 8 ? (b0 * 2 + 1) * 2 + 1 : b0) << i;
  }
}

TEST(Sandbox, AStreamStructHoldsPointersAndPositionsTheLibraryUpdates) {
  Lib lib = load();
  auto src = lib.alloc<float>(100);
  auto dst = lib.alloc<float>(100);
  auto st = lib.alloc<sb_stream>();
  ASSERT_TRUE(src && dst && st);
  for (int i = 0; i < 100; ++i) src->host_ptr()[i] = static_cast<float>(i);
  ASSERT_TRUE(st->write(sb_stream{src->in_extension(), 100, 0, dst->in_extension(), 60, 0}));
  EXPECT_EQ(value(lib.call<&sandbox_lib_api::stream_step>(*st, 10)), 10);
  sb_stream s = at(*st, 0);
  EXPECT_EQ(s.src_pos, 10u);
  EXPECT_EQ(s.dst_pos, 10u);
  EXPECT_EQ(value(lib.call<&sandbox_lib_api::stream_step>(*st, 1000)), 50);  // dst is full at 60
  s = at(*st, 0);
  EXPECT_EQ(s.src_pos, 60u);
  EXPECT_EQ(s.dst_pos, 60u);
  for (int i = 0; i < 60; ++i) EXPECT_EQ(at(*dst, static_cast<std::size_t>(i)), -static_cast<float>(i));
  EXPECT_EQ(at(*dst, 60), 0.0f);  // fresh allocations start zeroed
}

TEST(Sandbox, BufferArgumentsInSandboxMemoryAreNotCopied) {
  Lib lib = load();
  auto a = lib.alloc<float>(16);
  ASSERT_TRUE(a);
  EXPECT_EQ(value(lib.call<&sandbox_lib_api::seen>(*a, 16)), addr(a->in_extension()));
  EXPECT_EQ(value(lib.call<&sandbox_lib_api::seen>(a->host_ptr() + 4, 12)), addr(a->in_extension() + 4));
  std::vector<float> host(16, 0.0f);
  EXPECT_NE(value(lib.call<&sandbox_lib_api::seen>(host.data(), 16)), addr(host.data()));
  // An out buffer in sandbox memory is written by the extension directly; a host one is copied
  // back as before.
  ASSERT_TRUE(lib.call<&sandbox_lib_api::fill>(*a, 16, 7.5f));
  ASSERT_TRUE(lib.call<&sandbox_lib_api::fill>(host.data(), 16, 2.5f));
  for (std::size_t i = 0; i < 16; ++i) {
    EXPECT_EQ(at(*a, i), 7.5f);
    EXPECT_EQ(host[i], 2.5f);
  }
}

TEST(Sandbox, PointersOutsideLiveAllocationsAreMisuse) {
  Lib lib = load();
  auto a = lib.alloc<float>(16);
  auto keep = lib.alloc<float>(16);
  ASSERT_TRUE(a && keep);
  float* stale = a->host_ptr();
  a->free();
  EXPECT_FALSE(*a);
  EXPECT_EQ(a->write(0, 1.0f).error().kind, ward::Errc::misuse);
  auto expect_misuse = [](auto r, const char* what) {
    ASSERT_FALSE(r) << what;
    EXPECT_EQ(r.error().kind, ward::Errc::misuse) << what << ": " << r.error().message();
  };
  expect_misuse(lib.call<&sandbox_lib_api::seen>(stale, 4), "buffer in a freed allocation");
  expect_misuse(lib.call<&sandbox_lib_api::connect>(0, stale, 4), "shared in a freed allocation");
  std::vector<float> host(4);
  expect_misuse(lib.call<&sandbox_lib_api::connect>(0, host.data(), 4), "shared host memory");
  expect_misuse(lib.call<&sandbox_lib_api::connect>(0, *keep, 17), "shared past the allocation's end");
  expect_misuse(lib.call<&sandbox_lib_api::seen>(keep->host_ptr() + 8, 9), "buffer past the allocation's end");
  expect_misuse(lib.call<&sandbox_lib_api::stream_step>(nullptr, 1), "null shared");
  // The host's mistakes leave the extension alone.
  EXPECT_TRUE(lib.domain().alive());
  EXPECT_EQ(value(lib.call<&sandbox_lib_api::connect>(0, *keep, 16)), 0);
}

TEST(Sandbox, TheAllocatorSurvivesAnExtensionThatScribblesOverAllItsMemory) {
  Lib lib = load();
  std::vector<ward::Sandboxed<float>> blocks;
  for (int i = 0; i < 8; ++i) blocks.push_back(std::move(*lib.alloc<float>(1000)));
  auto flag = lib.alloc<bool>();
  ASSERT_TRUE(flag);
  ASSERT_EQ(value(lib.call<&sandbox_lib_api::connect>(0, blocks[0], 1000)), 0);
  const ward::Domain& d = lib.domain();
  const std::uint64_t base = d.extension_base();
  ASSERT_NE(base, 0u);
  // Every frame and all of sandbox memory, used and free: everything the host reads back. (Not
  // the control block and the boot area, which its own marshaling reads: trashing those only
  // crashes the extension.)
  const std::uint64_t span = d.frame_capacity() + d.policy().sandbox_memory();
  ASSERT_TRUE(lib.call<&sandbox_lib_api::scribble>(base + d.policy().arena_size() - span, span));
  EXPECT_TRUE(lib.domain().alive());
  // What the host reads is the extension's word, and checked: garbage floats, a bool normalised.
  std::uint32_t bits = 0;
  const float f = at(blocks[3], 5);
  std::memcpy(&bits, &f, sizeof bits);
  EXPECT_EQ(bits, 0xA5A5A5A5u);
  auto b = flag->read();
  ASSERT_TRUE(b);
  const bool v = b->unverified_value_i_trust_it();
  std::uint8_t raw = 0;
  std::memcpy(&raw, &v, 1);
  EXPECT_EQ(raw, 1);
  // The allocator's bookkeeping lives in the host: freeing and allocating still hands out
  // distinct, non-overlapping, zeroed blocks.
  const std::uint64_t old = addr(blocks[2].in_extension());
  blocks[2].free();
  auto again = lib.alloc<float>(1000);
  auto more = lib.alloc<float>(1000);
  ASSERT_TRUE(again && more);
  EXPECT_EQ(addr(again->in_extension()), old);
  for (auto& blk : blocks) {
    if (!blk) continue;
    const std::uint64_t lo = addr(blk.in_extension()), hi = lo + 1000 * sizeof(float);
    for (const auto* n : {&*again, &*more}) {
      const std::uint64_t x = addr(n->in_extension());
      EXPECT_TRUE(x + 1000 * sizeof(float) <= lo || x >= hi) << "overlapping blocks";
    }
  }
  EXPECT_EQ(at(*again, 999), 0.0f);
  // And calls go on.
  auto filled = lib.call<&sandbox_lib_api::fill>(*more, 1000, 1.0f);
  ASSERT_TRUE(filled) << filled.error().message();
  EXPECT_EQ(at(*more, 999), 1.0f);
}

TEST(Sandbox, ExhaustionIsALimitAndFreeingMakesRoom) {
  Lib lib = load(policy(64u << 10));
  EXPECT_EQ(lib.alloc<char>((64u << 10) + 1).error().kind, ward::Errc::limit);
  std::vector<ward::Sandboxed<char>> v;
  for (int i = 0; i < 4; ++i) {
    auto s = lib.alloc<char>(16u << 10);
    ASSERT_TRUE(s) << s.error().message();
    v.push_back(std::move(*s));
  }
  auto full = lib.alloc<char>(1);
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().kind, ward::Errc::limit);
  v[1].free();
  EXPECT_TRUE(lib.alloc<char>(16u << 10));
  EXPECT_EQ(lib.alloc<char>(0).error().kind, ward::Errc::misuse);
}

TEST(Sandbox, PolicySizesAreChecked) {
  EXPECT_FALSE(ward::Policy::builder().arena_size(1u << 20).sandbox_memory(1u << 20).build());
  EXPECT_FALSE(ward::Policy::builder().arena_size(1u << 20).sandbox_memory((1u << 20) - (32u << 10)).build());
  EXPECT_EQ(ward::Policy::builder().arena_size(256u << 10).build()->sandbox_memory(), 64u << 10);
  EXPECT_EQ(ward::Policy().sandbox_memory(), 1u << 20);
  Lib none = load(policy(0));
  EXPECT_EQ(none.alloc<int>(1).error().kind, ward::Errc::misuse);
  // Frames no longer reach into sandbox memory.
  Lib lib = load();
  EXPECT_LE(lib.domain().frame_capacity(), lib.domain().policy().arena_size() - (1u << 20));
}

TEST(Sandbox, HandlesOutlivingTheirDomainFailCleanly) {
  std::optional<ward::Sandboxed<int>> s;
  {
    Lib lib = load();
    s.emplace(std::move(*lib.alloc<int>(4)));
    ASSERT_TRUE(s->write(1, 42));
  }
  EXPECT_EQ(s->read(1).error().kind, ward::Errc::misuse);
  EXPECT_EQ(s->host_ptr(), nullptr);
  EXPECT_EQ(s->in_extension(), nullptr);
  s->free();
}

TEST(Sandbox, AnArenaAddressThatCannotBeMappedIsALoadError) {
  ward::Spec spec;
  spec.plugin = plugin();
  spec.entry = "sandbox_lib_entry";
  spec.policy = policy();
  spec.arena_at = 0x800000000000;  // past the user address space: no mapping can go there
  auto lib = Lib::load(std::move(spec));
  ASSERT_FALSE(lib);
  EXPECT_EQ(lib.error().kind, ward::Errc::load_failed);
  EXPECT_NE(lib.error().detail.find("cannot map the arena at 0x800000000000"), std::string::npos) << lib.error().message();
}

TEST(Sandbox, UnderASupervisorContentsAndAddressesSurviveARestart) {
  ward::Supervisor sup(ward::RestartPolicy{.max_restarts = 3, .window = 10s});
  auto ext = sup.load<sandbox_lib_api>(plugin(), "sandbox_lib_entry", policy());
  ASSERT_TRUE(ext) << ext.error().message();
  auto& lib = **ext;
  auto a = lib.alloc<float>(8);
  auto src = lib.alloc<float>(4);
  auto st = lib.alloc<sb_stream>();
  ASSERT_TRUE(a && src && st);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(a->write(static_cast<std::size_t>(i), static_cast<float>(i)));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(src->write(static_cast<std::size_t>(i), 10.0f + static_cast<float>(i)));
  ASSERT_TRUE(st->write(sb_stream{src->in_extension(), 4, 0, a->in_extension(), 8, 6}));
  ASSERT_EQ(value(lib.call<&sandbox_lib_api::connect>(0, *a, 8)), 0);
  const std::uint64_t where = value(lib.call<&sandbox_lib_api::port_addr>(0));
  ASSERT_EQ(where, addr(a->in_extension()));
  ASSERT_EQ(value(lib.call<&sandbox_lib_api::run>(8)), 1);  // a[i] = 2i + 1
  const pid_t before = ward::pid_of(lib.domain());
  const std::uint64_t base = lib.domain().extension_base();

  lib.kill();
  // run() finds the instance dead, recovery replays connect() into a fresh child that maps its
  // arena where the old one had it and holds the old heap's bytes; run() is then sent again.
  EXPECT_EQ(value(lib.call<&sandbox_lib_api::run>(8)), 1);
  EXPECT_NE(ward::pid_of(lib.domain()), before);
  EXPECT_EQ(lib.stats().restarts, 1u);
  EXPECT_EQ(lib.domain().extension_base(), base);
  EXPECT_EQ(value(lib.call<&sandbox_lib_api::port_addr>(0)), where);
  EXPECT_EQ(addr(a->in_extension()), where);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(at(*a, static_cast<std::size_t>(i)), (2.0f * static_cast<float>(i) + 1) * 2 + 1) << i;
  // A struct written before the restart, holding pointers the extension follows, still works.
  EXPECT_EQ(value(lib.call<&sandbox_lib_api::stream_step>(*st, 10)), 2);
  EXPECT_EQ(at(*a, 6), -10.0f);
  EXPECT_EQ(at(*a, 7), -11.0f);
  // The allocator state came along: new blocks do not overlap the old ones.
  auto fresh = lib.alloc<float>(8);
  ASSERT_TRUE(fresh);
  for (const std::uint64_t old : {addr(a->in_extension()), addr(src->in_extension()), addr(st->in_extension())})
    EXPECT_NE(addr(fresh->in_extension()), old);
}

}  // namespace
