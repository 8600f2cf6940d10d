// zstd (Debian's libzstd.so.1, unmodified) as a ward extension, compared call for call with the
// same library linked into this process: the one-shot API, long-lived contexts (opaque tokens),
// the streaming API (structs in sandbox memory); then under a Supervisor with the child killed at
// random points (seeded; WARD_ZSTD_SEED=<n> replays a run), and declarations or arguments that are
// wrong on purpose.
#include <gtest/gtest.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "zstd/zstd_api.h"
#include "zstd/zstd_stream.h"

namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<char>;
using zstd_ward::Step;
using zstd_ward::Streamed;
using zstd_ward::StreamShape;

constexpr unsigned char kSentinel = 0xab;

ward::Policy policy() {
  auto p = ward::Policy::builder().timeout(10s).arena_size(16ull << 20).sandbox_memory(2ull << 20).build();
  EXPECT_TRUE(p) << p.error().message();
  return *p;
}

template <class R>
auto value(const R& r) {
  EXPECT_TRUE(r) << r.error().message();
  return r->unverified_value_i_trust_it();
}

std::uint32_t seed() {
  const char* s = std::getenv("WARD_ZSTD_SEED");
  const std::uint32_t v = s ? static_cast<std::uint32_t>(std::strtoul(s, nullptr, 10)) : 20240610u;
  std::printf("zstd test seed %u (WARD_ZSTD_SEED)\n", v);
  return v;
}

struct Input {
  std::string name;
  Bytes bytes;
};

// The inputs every comparison runs on.
const std::vector<Input>& inputs() {
  static const std::vector<Input> all = [] {
    std::vector<Input> v;
    v.push_back({"empty", {}});
    v.push_back({"one_byte", {'x'}});
    std::string text;
    for (int i = 0; i < 500; ++i) text += "ward keeps extensions alive, line " + std::to_string(i % 23) + "\n";
    v.push_back({"text", Bytes(text.begin(), text.end())});
    std::mt19937 rng(7);
    Bytes noise(100 * 1024);
    for (char& c : noise) c = static_cast<char>(rng());
    v.push_back({"random", std::move(noise)});
    static const char* words[] = {"sandbox ", "extension ", "frame ", "window ", "restart ", "token ", "zstd\n"};
    Bytes mib;
    mib.reserve(1 << 20);
    while (mib.size() < (1u << 20)) {
      const std::string_view w = words[rng() % 7];
      mib.insert(mib.end(), w.begin(), w.end());
      if (rng() % 5 == 0) mib.push_back(static_cast<char>(rng()));
    }
    mib.resize(1 << 20);
    v.push_back({"one_mib", std::move(mib)});
    std::ifstream f("/usr/share/common-licenses/GPL-3", std::ios::binary);
    Bytes gpl((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    EXPECT_GT(gpl.size(), 10000u) << "/usr/share/common-licenses/GPL-3 is missing";
    v.push_back({"GPL-3", std::move(gpl)});
    return v;
  }();
  return all;
}

// What a one-shot call gives: zstd's result and the destination buffer (sentinel-filled
// beforehand). Two calls agree when their results and produced bytes do. Past the result zstd's
// contract says nothing (called directly it leaves scratch bytes there, and partial output on an
// error); through ward only the produced bytes come back (.filled(ward::result)), so the rest
// keeps the sentinel: untouched_past_result().
struct Shot {
  std::size_t ret;
  Bytes buf;
  Bytes produced() const {
    const std::size_t n = ZSTD_isError(ret) ? 0 : std::min(ret, buf.size());
    return Bytes(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
  }
  bool untouched_past_result() const {
    const std::size_t n = produced().size();
    return std::all_of(buf.begin() + static_cast<std::ptrdiff_t>(n), buf.end(),
                       [](char c) { return c == static_cast<char>(kSentinel); });
  }
  friend bool operator==(const Shot& a, const Shot& b) { return a.ret == b.ret && a.produced() == b.produced(); }
  // gtest shows the result and the buffer's first bytes.
  friend void PrintTo(const Shot& s, std::ostream* os) {
    *os << "ret " << s.ret << ", " << s.buf.size() << " bytes:";
    for (std::size_t i = 0; i < std::min<std::size_t>(s.buf.size(), 24); ++i)
      *os << ' ' << std::hex << (static_cast<unsigned>(s.buf[i]) & 0xff) << std::dec;
  }
};

Shot direct_compress(const Bytes& in, std::size_t cap, int level) {
  Shot s{0, Bytes(cap, static_cast<char>(kSentinel))};
  s.ret = ZSTD_compress(s.buf.data(), cap, in.data(), in.size(), level);
  return s;
}
Shot direct_decompress(const Bytes& in, std::size_t cap) {
  Shot s{0, Bytes(cap, static_cast<char>(kSentinel))};
  s.ret = ZSTD_decompress(s.buf.data(), cap, in.data(), in.size());
  return s;
}
template <class Lib>
Shot ward_compress(Lib& z, const Bytes& in, std::size_t cap, int level) {
  Shot s{0, Bytes(cap, static_cast<char>(kSentinel))};
  s.ret = value(z->ZSTD_compress(s.buf.data(), cap, in.data(), in.size(), level));
  return s;
}
template <class Lib>
Shot ward_decompress(Lib& z, const Bytes& in, std::size_t cap) {
  Shot s{0, Bytes(cap, static_cast<char>(kSentinel))};
  s.ret = value(z->ZSTD_decompress(s.buf.data(), cap, in.data(), in.size()));
  return s;
}

// `frame` with byte `at` (default: the middle) flipped. At 0 it is no frame at all; in the middle
// zstd notices only when the block or a checksum says so.
Bytes corrupted(Bytes frame, std::size_t at = ~std::size_t{0}) {
  if (at >= frame.size()) at = frame.size() / 2;
  frame[at] = static_cast<char>(frame[at] ^ 0x5a);
  return frame;
}
Bytes compressed(const Bytes& in, int level) {
  Shot s = direct_compress(in, ZSTD_compressBound(in.size()), level);
  s.buf.resize(s.ret);
  return s.buf;
}

// ---- one-shot ------------------------------------------------------------------------------

TEST(ZstdOneShot, EveryCallMatchesTheLibraryCalledDirectly) {
  auto z = ward::Instance<zstd_api>::open("libzstd.so.1", policy());
  ASSERT_TRUE(z) << z.error().message();
  EXPECT_EQ(value((*z)->ZSTD_versionNumber()), ZSTD_versionNumber());
  for (const Input& in : inputs()) {
    SCOPED_TRACE(in.name);
    const std::size_t bound = ZSTD_compressBound(in.bytes.size());
    ASSERT_EQ(value((*z)->ZSTD_compressBound(in.bytes.size())), bound);
    for (int level : {-5, 1, 3, 12}) {
      SCOPED_TRACE(level);
      const Shot direct = direct_compress(in.bytes, bound, level);
      ASSERT_FALSE(ZSTD_isError(direct.ret));
      const Shot through = ward_compress(*z, in.bytes, bound, level);
      ASSERT_EQ(through, direct);
      EXPECT_TRUE(through.untouched_past_result());
      const Bytes frame(direct.buf.begin(), direct.buf.begin() + static_cast<std::ptrdiff_t>(direct.ret));
      EXPECT_EQ(value((*z)->ZSTD_getFrameContentSize(frame.data(), frame.size())),
                ZSTD_getFrameContentSize(frame.data(), frame.size()));
      const Shot back = ward_decompress(*z, frame, in.bytes.size() + 16);
      ASSERT_EQ(back, direct_decompress(frame, in.bytes.size() + 16));
      ASSERT_EQ(back.ret, in.bytes.size());
      EXPECT_TRUE(std::equal(in.bytes.begin(), in.bytes.end(), back.buf.begin()));
    }
  }
}

// zstd's error codes come back as its own, and a failed call leaves the host's buffer as it was.
TEST(ZstdOneShot, ErrorCodesAreTheLibrarysOwnAndLeaveTheBufferAlone) {
  auto z = ward::Instance<zstd_api>::open("libzstd.so.1", policy());
  ASSERT_TRUE(z) << z.error().message();
  for (const Input& in : inputs()) {
    if (in.bytes.size() < 2) continue;
    SCOPED_TRACE(in.name);
    const Bytes frame = compressed(in.bytes, 3);
    const Shot small_dst = ward_compress(*z, in.bytes, frame.size() / 2, 3);
    EXPECT_EQ(small_dst, direct_compress(in.bytes, frame.size() / 2, 3));
    const Shot small_out = ward_decompress(*z, frame, in.bytes.size() - 1);
    EXPECT_EQ(small_out, direct_decompress(frame, in.bytes.size() - 1));
    const Shot corrupt = ward_decompress(*z, corrupted(frame, 0), in.bytes.size());
    EXPECT_EQ(corrupt, direct_decompress(corrupted(frame, 0), in.bytes.size()));
    // A flip inside a frame without a checksum may go unnoticed (stored blocks): whatever zstd
    // makes of it, it makes the same through ward.
    EXPECT_EQ(ward_decompress(*z, corrupted(frame), in.bytes.size()), direct_decompress(corrupted(frame), in.bytes.size()));
    const Bytes cut(frame.begin(), frame.end() - 3);
    const Shot truncated = ward_decompress(*z, cut, in.bytes.size());
    EXPECT_EQ(truncated, direct_decompress(cut, in.bytes.size()));
    for (const Shot* s : {&small_dst, &small_out, &corrupt, &truncated}) {
      EXPECT_TRUE(ZSTD_isError(s->ret));
      EXPECT_NE(value((*z)->ZSTD_isError(s->ret)), 0u);
      EXPECT_EQ(value((*z)->ZSTD_getErrorName(s->ret)).value_or(""), ZSTD_getErrorName(s->ret));
      EXPECT_TRUE(s->untouched_past_result());  // on an error: all of it
    }
  }
}

// ---- contexts (opaque tokens) ----------------------------------------------------------------

struct DirectCtx {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ~DirectCtx() {
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
  }
};

// The parameters the context tests set: the checksum changes the frame, so a context that lost
// them produces different bytes.
constexpr std::pair<ZSTD_cParameter, int> kParams[] = {{ZSTD_c_compressionLevel, 7}, {ZSTD_c_checksumFlag, 1}};

template <class Lib>
std::pair<ward::Opaque<ZSTD_CCtx>, ward::Opaque<ZSTD_DCtx>> ward_contexts(Lib& z) {
  const auto c = *z->ZSTD_createCCtx();
  const auto d = *z->ZSTD_createDCtx();
  EXPECT_TRUE(c && d);
  for (auto [p, v] : kParams) EXPECT_FALSE(ZSTD_isError(value(z->ZSTD_CCtx_setParameter(c, p, v))));
  return {c, d};
}

TEST(ZstdContext, CompressAndDecompressWithContextsMatchDirectCalls) {
  auto z = ward::Instance<zstd_api>::open("libzstd.so.1", policy());
  ASSERT_TRUE(z) << z.error().message();
  auto [c, d] = ward_contexts(*z);
  DirectCtx direct;
  for (auto [p, v] : kParams) ASSERT_FALSE(ZSTD_isError(ZSTD_CCtx_setParameter(direct.c, p, v)));
  // An out-of-range parameter is zstd's error, the same code.
  EXPECT_EQ(value((*z)->ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 99)),
            ZSTD_CCtx_setParameter(direct.c, ZSTD_c_windowLog, 99));
  for (const Input& in : inputs()) {
    SCOPED_TRACE(in.name);
    const std::size_t bound = ZSTD_compressBound(in.bytes.size());
    Shot w2{0, Bytes(bound, static_cast<char>(kSentinel))}, d2 = w2;
    w2.ret = value((*z)->ZSTD_compress2(c, w2.buf.data(), bound, in.bytes.data(), in.bytes.size()));
    d2.ret = ZSTD_compress2(direct.c, d2.buf.data(), bound, in.bytes.data(), in.bytes.size());
    ASSERT_EQ(w2, d2);
    Shot wc{0, Bytes(bound, static_cast<char>(kSentinel))}, dc = wc;
    wc.ret = value((*z)->ZSTD_compressCCtx(c, wc.buf.data(), bound, in.bytes.data(), in.bytes.size(), 5));
    dc.ret = ZSTD_compressCCtx(direct.c, dc.buf.data(), bound, in.bytes.data(), in.bytes.size(), 5);
    ASSERT_EQ(wc, dc);
    // compressCCtx reset the advanced parameters (zstd.h); set them again, on both.
    for (auto [p, v] : kParams) {
      ASSERT_EQ(value((*z)->ZSTD_CCtx_setParameter(c, p, v)), ZSTD_CCtx_setParameter(direct.c, p, v));
    }
    const Bytes frame(w2.buf.begin(), w2.buf.begin() + static_cast<std::ptrdiff_t>(w2.ret));
    Bytes back(in.bytes.size() + 1);
    ASSERT_EQ(value((*z)->ZSTD_decompressDCtx(d, back.data(), back.size(), frame.data(), frame.size())), in.bytes.size());
    back.pop_back();
    EXPECT_EQ(back, in.bytes);
    if (frame.size() > 8) {
      const Bytes bad = corrupted(frame);
      Bytes scratch(in.bytes.size() + 1);
      EXPECT_EQ(value((*z)->ZSTD_decompressDCtx(d, scratch.data(), scratch.size(), bad.data(), bad.size())),
                ZSTD_decompressDCtx(direct.d, scratch.data(), scratch.size(), bad.data(), bad.size()));
    }
  }
  EXPECT_EQ(value((*z)->ZSTD_freeCCtx(c)), 0u);
  EXPECT_EQ(value((*z)->ZSTD_freeDCtx(d)), 0u);
}

// Tokens are checked before anything crosses: forged, or of the other context type.
TEST(ZstdContext, ForgedAndMistypedTokensAreMisuse) {
  auto z = ward::Instance<zstd_api>::open("libzstd.so.1", policy());
  ASSERT_TRUE(z) << z.error().message();
  auto [c, d] = ward_contexts(*z);
  char dst[64];
  const char src[] = "hello";
  auto forged = (*z)->ZSTD_compress2(reinterpret_cast<ZSTD_CCtx*>(c.token() ^ 0x10), dst, sizeof dst, src, 5);
  ASSERT_FALSE(forged);
  EXPECT_EQ(forged.error().kind, ward::Errc::misuse) << forged.error().message();
  auto mistyped = (*z)->ZSTD_compress2(reinterpret_cast<ZSTD_CCtx*>(static_cast<ZSTD_DCtx*>(d)), dst, sizeof dst, src, 5);
  ASSERT_FALSE(mistyped);
  EXPECT_EQ(mistyped.error().kind, ward::Errc::misuse) << mistyped.error().message();
  // The real token still works: nothing reached the library.
  EXPECT_FALSE(ZSTD_isError(value((*z)->ZSTD_compress2(c, dst, sizeof dst, src, 5))));
}

// ---- streaming (structs and windows in sandbox memory) ----------------------------------------

// The reference: the loops zstd_stream.h runs, made directly on host buffers.
Streamed direct_compress_stream(const Bytes& input, const StreamShape& shape) {
  Streamed s;
  ZSTD_CCtx* c = ZSTD_createCStream();
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, shape.level);
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, shape.checksum ? 1 : 0);
  Bytes out(shape.out_cap);
  std::size_t offset = 0;
  for (bool last = false; !last;) {
    const std::size_t n = std::min(shape.in_chunk, input.size() - offset);
    last = offset + n == input.size();
    ZSTD_inBuffer ib{input.data() + offset, n, 0};
    offset += n;
    for (bool done = false; !done;) {
      ZSTD_outBuffer ob{out.data(), out.size(), 0};
      const std::size_t ret = ZSTD_compressStream2(c, &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
      s.steps.push_back({ret, ib.pos, ob.pos, Bytes(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(ob.pos))});
      s.bytes.insert(s.bytes.end(), out.begin(), out.begin() + static_cast<std::ptrdiff_t>(ob.pos));
      if (ZSTD_isError(ret)) {
        s.zstd_error = ret;
        last = true;
        break;
      }
      done = last ? ret == 0 : ib.pos == n;
    }
  }
  ZSTD_freeCStream(c);
  return s;
}

Streamed direct_decompress_stream(const Bytes& input, const StreamShape& shape) {
  Streamed s;
  ZSTD_DCtx* d = ZSTD_createDStream();
  Bytes out(shape.out_cap);
  std::size_t last_ret = 1;
  for (std::size_t offset = 0; offset < input.size() && !s.zstd_error;) {
    const std::size_t n = std::min(shape.in_chunk, input.size() - offset);
    ZSTD_inBuffer ib{input.data() + offset, n, 0};
    offset += n;
    for (bool more = true; more;) {
      ZSTD_outBuffer ob{out.data(), out.size(), 0};
      const std::size_t ret = ZSTD_decompressStream(d, &ob, &ib);
      s.steps.push_back({ret, ib.pos, ob.pos, Bytes(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(ob.pos))});
      s.bytes.insert(s.bytes.end(), out.begin(), out.begin() + static_cast<std::ptrdiff_t>(ob.pos));
      if (ZSTD_isError(ret)) {
        s.zstd_error = ret;
        break;
      }
      last_ret = ret;
      more = ib.pos < n || (ob.pos == out.size() && ret != 0);
    }
  }
  s.truncated = !s.zstd_error && last_ret != 0;
  ZSTD_freeDStream(d);
  return s;
}

// Shapes: the library's own sizes; small windows (many calls, out window full); checksums.
std::vector<StreamShape> shapes() {
  return {{.level = 3, .in_chunk = ZSTD_CStreamInSize(), .out_cap = ZSTD_CStreamOutSize()},
          {.level = 1, .checksum = true, .in_chunk = 4000, .out_cap = 97},
          {.level = 9, .checksum = true, .in_chunk = 65536, .out_cap = 4096}};
}

void expect_same(const Streamed& through, const Streamed& direct) {
  EXPECT_EQ(through.zstd_error, direct.zstd_error);
  EXPECT_EQ(through.truncated, direct.truncated);
  ASSERT_EQ(through.steps.size(), direct.steps.size());
  for (std::size_t i = 0; i < direct.steps.size(); ++i) ASSERT_EQ(through.steps[i], direct.steps[i]) << "call " << i;
  EXPECT_EQ(through.bytes, direct.bytes);
}

TEST(ZstdStream, EveryStreamCallMatchesTheLibraryCalledDirectly) {
  auto z = ward::Instance<zstd_stream_api>::open("libzstd.so.1", policy());
  ASSERT_TRUE(z) << z.error().message();
  for (const Input& in : inputs()) {
    for (const StreamShape& shape : shapes()) {
      SCOPED_TRACE(in.name + " level " + std::to_string(shape.level) + " out " + std::to_string(shape.out_cap));
      auto packed = zstd_ward::compress_stream(*z, in.bytes, shape);
      ASSERT_TRUE(packed) << packed.error().message();
      const Streamed direct = direct_compress_stream(in.bytes, shape);
      expect_same(*packed, direct);
      ASSERT_EQ(packed->zstd_error, 0u);
      auto plain = zstd_ward::decompress_stream(*z, packed->bytes, shape);
      ASSERT_TRUE(plain) << plain.error().message();
      expect_same(*plain, direct_decompress_stream(packed->bytes, shape));
      EXPECT_FALSE(plain->truncated);
      EXPECT_EQ(plain->bytes, in.bytes);
    }
  }
}

TEST(ZstdStream, CorruptAndTruncatedFramesFailAsTheyDoDirectly) {
  auto z = ward::Instance<zstd_stream_api>::open("libzstd.so.1", policy());
  ASSERT_TRUE(z) << z.error().message();
  const StreamShape shape = shapes()[1];
  const Bytes& input = inputs()[5].bytes;
  auto packed = zstd_ward::compress_stream(*z, input, shape);  // with a checksum
  ASSERT_TRUE(packed) << packed.error().message();
  for (std::size_t at : {std::size_t{0}, packed->bytes.size() / 2}) {
    SCOPED_TRACE(at);
    const Bytes bad_frame = corrupted(packed->bytes, at);
    auto bad = zstd_ward::decompress_stream(*z, bad_frame, shape);
    ASSERT_TRUE(bad) << bad.error().message();
    const Streamed direct_bad = direct_decompress_stream(bad_frame, shape);
    ASSERT_NE(direct_bad.zstd_error, 0u);
    expect_same(*bad, direct_bad);
  }
  const Bytes cut(packed->bytes.begin(), packed->bytes.end() - 3);
  auto short_frame = zstd_ward::decompress_stream(*z, cut, shape);
  ASSERT_TRUE(short_frame) << short_frame.error().message();
  EXPECT_TRUE(short_frame->truncated);
  expect_same(*short_frame, direct_decompress_stream(cut, shape));
}

// ---- under a Supervisor, killed at random points ---------------------------------------------

// One-shot and context calls are idempotent: a kill before or during any of them is invisible
// to the caller. Contexts and their parameters were created by replayed calls, so the same
// tokens keep working with the same parameters (the checksum flag shows in the bytes).
TEST(ZstdSupervised, OneShotAndContextCallsSurviveRandomKills) {
  std::mt19937 rng(seed());
  ward::Supervisor sup(ward::RestartPolicy{.max_restarts = 1000, .window = 10s});
  auto ext = sup.open<zstd_api>("libzstd.so.1", policy());
  ASSERT_TRUE(ext) << ext.error().message();
  auto& z = **ext;
  auto [c, d] = ward_contexts(z);
  DirectCtx direct;
  for (auto [p, v] : kParams) ASSERT_FALSE(ZSTD_isError(ZSTD_CCtx_setParameter(direct.c, p, v)));
  unsigned kills = 0;
  for (int op = 0; op < 60; ++op) {
    const Input& in = inputs()[rng() % inputs().size()];
    SCOPED_TRACE("op " + std::to_string(op) + " on " + in.name);
    const std::size_t bound = ZSTD_compressBound(in.bytes.size());
    // A kill before the call, or one from another thread while it runs.
    std::jthread killer;
    switch (rng() % 4) {
      case 0: z.kill(), ++kills; break;
      case 1:
        killer = std::jthread([&z, delay = std::chrono::microseconds(rng() % 3000)] {
          std::this_thread::sleep_for(delay);
          z.kill();
        });
        ++kills;
        break;
      default: break;
    }
    Shot through{0, Bytes(bound, static_cast<char>(kSentinel))}, expect = through;
    if (rng() % 2) {
      const int level = static_cast<int>(rng() % 6) + 1;
      through = ward_compress(z, in.bytes, bound, level);
      expect = direct_compress(in.bytes, bound, level);
    } else {
      through.ret = value(z->ZSTD_compress2(c, through.buf.data(), bound, in.bytes.data(), in.bytes.size()));
      expect.ret = ZSTD_compress2(direct.c, expect.buf.data(), bound, in.bytes.data(), in.bytes.size());
    }
    ASSERT_EQ(through, expect);
    EXPECT_TRUE(through.untouched_past_result());
    killer = {};
    Bytes back(in.bytes.size() + 1);
    ASSERT_EQ(value(z->ZSTD_decompressDCtx(d, back.data(), back.size(), through.buf.data(), through.ret)), in.bytes.size());
    back.pop_back();
    ASSERT_EQ(back, in.bytes);
  }
  // Each kill either hit a live instance (a restart) or an instance already being replaced.
  EXPECT_GT(z.stats().restarts, 0u);
  EXPECT_LE(z.stats().restarts, kills);
  EXPECT_EQ(z.stats().errors_to_callers, 0u);
  std::printf("%u kills, %llu restarts, %llu retried, %llu replayed\n", kills,
              static_cast<unsigned long long>(z.stats().restarts), static_cast<unsigned long long>(z.stats().retried),
              static_cast<unsigned long long>(z.stats().replayed));
}

// The honest guarantee for streams: a restart never lets a stream continue on a fresh context.
// The first call after a kill fails either way: with crashed when it was sent to the dying
// child (it is not idempotent, so it is not sent again), or with misuse when the death was
// noticed first, the instance restarted and the call's context token found stale. Every later
// call on the stream's context is refused as stale. The host must start the stream over; it can
// tell by the restart counter (start_over_after_restart).
::testing::AssertionResult lost_with_its_instance(const ward::Error& e) {
  if (e.kind == ward::Errc::crashed) return ::testing::AssertionSuccess();
  if (e.kind == ward::Errc::misuse && e.detail.find("since been restarted") != std::string::npos)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << e.message();
}

TEST(ZstdSupervised, AStreamInterruptedByARestartFailsAndNeverContinuesSilently) {
  ward::Supervisor sup(ward::RestartPolicy{.max_restarts = 10, .window = 10s});
  auto ext = sup.open<zstd_stream_api>("libzstd.so.1", policy());
  ASSERT_TRUE(ext) << ext.error().message();
  auto& z = **ext;
  const Bytes& input = inputs()[4].bytes;
  auto r = zstd_ward::compress_stream(z, input, shapes()[1], [&](std::size_t call) {
    if (call == 3) z.kill();
  });
  ASSERT_FALSE(r) << "a stream went on after its context died with the instance";
  EXPECT_TRUE(lost_with_its_instance(r.error()));
  EXPECT_EQ(z.stats().restarts, 1u);

  auto c = z->ZSTD_createCStream();
  ASSERT_TRUE(c && *c);
  EXPECT_FALSE(ZSTD_isError(value(z->ZSTD_CCtx_setParameter(*c, ZSTD_c_compressionLevel, 3))));
  z.kill();
  auto first = z->ZSTD_CCtx_setParameter(*c, ZSTD_c_compressionLevel, 4);
  ASSERT_FALSE(first);
  EXPECT_TRUE(lost_with_its_instance(first.error()));
  for (int i = 0; i < 2; ++i) {
    auto later = z->ZSTD_CCtx_setParameter(*c, ZSTD_c_compressionLevel, 4);
    ASSERT_FALSE(later) << "a stream context outlived its instance";
    EXPECT_EQ(later.error().kind, ward::Errc::misuse);
    EXPECT_NE(later.error().detail.find("since been restarted"), std::string::npos) << later.error().message();
  }
  EXPECT_EQ(z.stats().restarts, 2u);
  // Started over, the same stream gives the direct bytes.
  auto again = zstd_ward::compress_stream(z, input, shapes()[1]);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(again->bytes, direct_compress_stream(input, shapes()[1]).bytes);
}

// The host's rule (start_over_after_restart) under random kills between and during stream
// calls: every stream's result equals the direct one.
TEST(ZstdSupervised, StreamsStartedOverAfterRandomKillsGiveTheDirectBytes) {
  std::mt19937 rng(seed() + 1);
  ward::Supervisor sup(ward::RestartPolicy{.max_restarts = 1000, .window = 10s});
  auto ext = sup.open<zstd_stream_api>("libzstd.so.1", policy());
  ASSERT_TRUE(ext) << ext.error().message();
  auto& z = **ext;
  unsigned attempts = 0;
  for (int round = 0; round < 12; ++round) {
    const Input& in = inputs()[2 + rng() % (inputs().size() - 2)];
    const StreamShape shape = shapes()[rng() % shapes().size()];
    SCOPED_TRACE("round " + std::to_string(round) + " on " + in.name);
    const Streamed direct = direct_compress_stream(in.bytes, shape);
    // Each attempt kills at most once, at a random call, before it or (from a thread) during it;
    // the third attempt is left alone so that every round ends.
    std::jthread killer;
    auto fault = [&](unsigned attempt) {
      const std::size_t at = rng() % (direct.steps.size() + 1);
      const bool during = rng() % 2;
      return [&, attempt, at, during](std::size_t call) {
        if (attempt >= 3 || call != at) return;
        if (!during) return z.kill();
        killer = std::jthread([&z, delay = std::chrono::microseconds(rng() % 500)] {
          std::this_thread::sleep_for(delay);
          z.kill();
        });
      };
    };
    unsigned attempt = 0;
    auto packed = zstd_ward::start_over_after_restart(z, 5, [&] {
      ++attempts;
      return zstd_ward::compress_stream(z, in.bytes, shape, fault(++attempt));
    });
    killer = {};
    ASSERT_TRUE(packed) << packed.error().message();
    ASSERT_EQ(packed->bytes, direct.bytes);
    attempt = 0;
    auto plain = zstd_ward::start_over_after_restart(z, 5, [&] {
      ++attempts;
      return zstd_ward::decompress_stream(z, packed->bytes, shape, fault(++attempt));
    });
    killer = {};
    ASSERT_TRUE(plain) << plain.error().message();
    ASSERT_EQ(plain->bytes, in.bytes);
  }
  EXPECT_GT(z.stats().restarts, 0u);
  EXPECT_GT(attempts, 24u) << "no stream was ever started over";
  std::printf("%u stream attempts for 24 streams, %llu restarts\n", attempts,
              static_cast<unsigned long long>(z.stats().restarts));
}

// ---- wrong on purpose ----------------------------------------------------------------------

// The host lies about a capacity. For sandbox memory ward knows the allocation's size: a
// capacity past its end is misuse, and nothing is sent. (For host memory a C pointer carries no
// size, so ward cannot tell; what it does guarantee is that at most the produced bytes are
// copied into the host's buffer: see ErrorCodesAreTheLibrarysOwn... and the sentinel checks.)
TEST(ZstdWrongOnPurpose, ACapacityPastASandboxAllocationIsMisuse) {
  auto z = ward::Instance<zstd_api>::open("libzstd.so.1", policy());
  ASSERT_TRUE(z) << z.error().message();
  auto dst = z->alloc<char>(16);
  ASSERT_TRUE(dst) << dst.error().message();
  const Bytes& text = inputs()[2].bytes;
  auto lie = (*z)->ZSTD_compress(*dst, 1000, text.data(), text.size(), 3);
  ASSERT_FALSE(lie) << "a 1000-byte capacity over a 16-byte allocation was sent";
  EXPECT_EQ(lie.error().kind, ward::Errc::misuse) << lie.error().message();
  // The honest capacity is zstd's own error, like the direct call's.
  char host[16];
  EXPECT_EQ(value((*z)->ZSTD_compress(*dst, 16, text.data(), text.size(), 3)),
            ZSTD_compress(host, sizeof host, text.data(), text.size(), 3));
}

// ward::shared means sandbox memory: a stream struct on the host's stack is refused.
TEST(ZstdWrongOnPurpose, AStreamStructInHostMemoryIsMisuse) {
  auto z = ward::Instance<zstd_stream_api>::open("libzstd.so.1", policy());
  ASSERT_TRUE(z) << z.error().message();
  auto c = (*z)->ZSTD_createCStream();
  ASSERT_TRUE(c && *c);
  auto in = z->alloc<ZSTD_inBuffer>();
  auto out = z->alloc<ZSTD_outBuffer>();
  ASSERT_TRUE(in && out);
  char host_bytes[64];
  std::memset(host_bytes, kSentinel, sizeof host_bytes);
  ZSTD_outBuffer on_stack{host_bytes, sizeof host_bytes, 0};
  auto r = (*z)->ZSTD_compressStream2(*c, &on_stack, *in, ZSTD_e_end);
  ASSERT_FALSE(r) << "a host struct was passed as ward::shared";
  EXPECT_EQ(r.error().kind, ward::Errc::misuse) << r.error().message();
  // A sandbox struct that points at host memory: the library runs in another process, where
  // that address is not the host's buffer. Whatever the call does, the host's bytes stay.
  ASSERT_TRUE(out->write(on_stack));
  (void)(*z)->ZSTD_compressStream2(*c, *out, *in, ZSTD_e_end);
  EXPECT_EQ(Bytes(host_bytes, host_bytes + sizeof host_bytes), Bytes(sizeof host_bytes, static_cast<char>(kSentinel)));
}

// What the library leaves in the stream structs is checked: a position past the size (or a
// pointer or size changed) is refused as bad_data before any byte is copied out.
TEST(ZstdWrongOnPurpose, PositionsOutOfBoundsAreRefused) {
  auto z = ward::Instance<zstd_stream_api>::open("libzstd.so.1", policy());
  ASSERT_TRUE(z) << z.error().message();
  auto w = zstd_ward::detail::Window::make(*z, 64, 64);
  ASSERT_TRUE(w) << w.error().message();
  const char chunk[8] = "abcdefg";
  ASSERT_TRUE(w->feed(chunk));
  ASSERT_TRUE(w->empty_out());
  ASSERT_TRUE(w->after(0)) << "untouched structs must pass";
  const auto ob = w->out_buffer().read();
  ASSERT_TRUE(ob);
  // What a hostile library could leave there: pos one past the end; then a moved pointer.
  ZSTD_outBuffer bad = ob->unverified_value_i_trust_it();
  bad.pos = bad.size + 1;
  ASSERT_TRUE(w->out_buffer().write(bad));
  auto past = w->after(0);
  ASSERT_FALSE(past);
  EXPECT_EQ(past.error().kind, ward::Errc::bad_data);
  ASSERT_TRUE(w->empty_out());
  ZSTD_inBuffer moved{chunk, sizeof chunk, 0};  // a host address: the library has no business there
  ASSERT_TRUE(w->in_buffer().write(moved));
  auto wild = w->after(0);
  ASSERT_FALSE(wild);
  EXPECT_EQ(wild.error().kind, ward::Errc::bad_data);
}

}  // namespace
