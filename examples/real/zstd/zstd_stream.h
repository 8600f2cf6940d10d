// Streaming through zstd in a ward extension (zstd_stream_api, zstd_api.h): the host's side of
// ZSTD_compressStream2 / ZSTD_decompressStream, whose ZSTD_inBuffer / ZSTD_outBuffer structs hold
// pointers the library follows and positions it advances.
//
//   auto z = ward::Instance<zstd_stream_api>::open("libzstd.so.1", policy);
//   auto packed = zstd_ward::compress_stream(*z, input, {.level = 3});      // Result<Streamed>
//   auto plain = zstd_ward::decompress_stream(*z, packed->bytes, {});
//
// Memory: the two structs and the two data windows are sandbox memory (Sandboxed<T>), passed in
// place with ward::shared; the structs hold in_extension() addresses. Nothing the library writes
// is trusted: after each call both structs are read back tainted and accepted only if their
// pointers and sizes are the ones the host wrote and pos <= size (bad_data otherwise); only then
// are pos bytes of the out window copied into host memory.
//
// Results: a ward error (the call could not be made or its outcome was refused) is the Result's
// error; zstd's own error code is Streamed::zstd_error, as a direct caller would see it.
//
// Under a Supervisor (Extension<zstd_stream_api>) a restart destroys every stream: stream
// contexts are not replayed, so the next call on one fails (misuse: stale token), and a call the
// kill interrupted fails (crashed). start_over_after_restart() is the host's rule: if the
// extension restarted while a stream ran, the stream's output so far is worthless; run it again
// from the beginning of the input. It tells a restart from other failures by the extension's
// restart counter, not by parsing messages.
//
// Threads: one stream at a time per call; the Lib is the caller's.
#pragma once

#include <zstd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <functional>
#include <span>
#include <utility>
#include <vector>

#include "zstd/zstd_api.h"

namespace zstd_ward {

struct StreamShape {
  int level = 3;
  bool checksum = false;
  std::size_t in_chunk = 0;  // bytes handed to each call; 0: the library's ZSTD_CStreamInSize()
  std::size_t out_cap = 0;   // out window per call; 0: ZSTD_CStreamOutSize() / ZSTD_DStreamOutSize()
};

// One stream call's outcome, to compare call for call with the library used directly.
struct Step {
  std::size_t ret = 0;
  std::size_t in_pos = 0, out_pos = 0;
  std::vector<char> out;
  friend bool operator==(const Step&, const Step&) = default;
};

struct Streamed {
  std::vector<char> bytes;     // what the stream produced (up to the error, if any)
  std::size_t zstd_error = 0;  // zstd's error code, 0 when none
  bool truncated = false;      // decompression: the input ended inside a frame
  std::vector<Step> steps;
};

// Called before each stream call with its number (0, 1, ...): where a test injects faults.
using Hook = std::function<void(std::size_t call)>;

namespace detail {

template <class T>
T value(const ward::Tainted<T>& t) {  // integers any value of which the caller checks itself
  return t.unverified_value_i_trust_it();
}

// The sandbox memory one stream works in, and the checks on what the library left in it.
class Window {
 public:
  template <class Lib>
  static ward::Result<Window> make(Lib& lib, std::size_t in_cap, std::size_t out_cap) {
    Window w;
    w.in_ = WARD_TRY(lib.template alloc<char>(std::max<std::size_t>(in_cap, 1)));
    w.out_ = WARD_TRY(lib.template alloc<char>(out_cap));
    w.inb_ = WARD_TRY(lib.template alloc<ZSTD_inBuffer>());
    w.outb_ = WARD_TRY(lib.template alloc<ZSTD_outBuffer>());
    return w;
  }
  // The next input chunk: its bytes into the in window, pos 0. host_ptr() is taken afresh
  // each time: a restart moves the heap's host mapping.
  ward::Result<void> feed(std::span<const char> chunk) {
    if (!chunk.empty()) std::memcpy(in_.host_ptr(), chunk.data(), chunk.size());
    in_size_ = chunk.size();
    return inb_.write(ZSTD_inBuffer{in_.in_extension(), in_size_, 0});
  }
  ward::Result<void> empty_out() { return outb_.write(ZSTD_outBuffer{out_.in_extension(), out_.size(), 0}); }

  // Positions after a call, accepted only if the library left the structs as they must be.
  ward::Result<Step> after(std::size_t ret) {
    const ZSTD_inBuffer in = WARD_TRY(WARD_TRY(inb_.read()).verify(
        [&](const ZSTD_inBuffer& b) { return b.src == in_.in_extension() && b.size == in_size_ && b.pos <= b.size; },
        "ZSTD_inBuffer after the call (pointer, size or pos changed out of bounds)"));
    const ZSTD_outBuffer out = WARD_TRY(WARD_TRY(outb_.read()).verify(
        [&](const ZSTD_outBuffer& b) { return b.dst == out_.in_extension() && b.size == out_.size() && b.pos <= b.size; },
        "ZSTD_outBuffer after the call (pointer, size or pos changed out of bounds)"));
    const char* produced = out_.host_ptr();
    return Step{ret, in.pos, out.pos, std::vector<char>(produced, produced + out.pos)};
  }

  ward::Sandboxed<ZSTD_inBuffer>& in_buffer() { return inb_; }
  ward::Sandboxed<ZSTD_outBuffer>& out_buffer() { return outb_; }
  std::size_t out_cap() const { return out_.size(); }

 private:
  ward::Sandboxed<char> in_, out_;
  ward::Sandboxed<ZSTD_inBuffer> inb_;
  ward::Sandboxed<ZSTD_outBuffer> outb_;
  std::size_t in_size_ = 0;
};

// A stream context, freed when the stream ends. A free that fails is not reported: it fails only
// when the instance that held the context is gone, and the context with it.
template <class Lib, class Ctx, auto Free>
class Owned {
 public:
  Owned(Lib& lib, ward::Opaque<Ctx> c) : lib_(lib), c_(c) {}
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  ~Owned() { (void)lib_.template call<Free>(static_cast<Ctx*>(c_)); }
  ward::Opaque<Ctx> get() const { return c_; }

 private:
  Lib& lib_;
  ward::Opaque<Ctx> c_;
};

// zstd's answer `ret`: an error code (reported in `s`, true) or not.
template <class Lib>
ward::Result<bool> is_error(Lib& lib, std::size_t ret, Streamed& s) {
  if (!value(WARD_TRY(lib->ZSTD_isError(ret)))) return false;
  s.zstd_error = ret;
  return true;
}

// One stream call: an empty out window, the hook, the call `send` makes, the structs checked,
// the output appended to `s`. Returns the call's step; zstd's error, if any, is in s.zstd_error.
template <class Lib, class Send>
ward::Result<Step> call(Lib& lib, Window& w, Streamed& s, const Hook& hook, Send&& send) {
  WARD_TRY(w.empty_out());
  if (hook) hook(s.steps.size());
  const std::size_t ret = value(WARD_TRY(std::forward<Send>(send)()));
  Step step = WARD_TRY(w.after(ret));
  s.bytes.insert(s.bytes.end(), step.out.begin(), step.out.end());
  s.steps.push_back(step);
  WARD_TRY(is_error(lib, ret, s));
  return step;
}

}  // namespace detail

// Compresses `input` as one frame: chunks of shape.in_chunk with ZSTD_e_continue, the last with
// ZSTD_e_end, each call with an empty out window of shape.out_cap.
template <class Lib>
ward::Result<Streamed> compress_stream(Lib& lib, std::span<const char> input, StreamShape shape, const Hook& hook = {}) {
  if (!shape.in_chunk) shape.in_chunk = detail::value(WARD_TRY(lib->ZSTD_CStreamInSize()));
  if (!shape.out_cap) shape.out_cap = detail::value(WARD_TRY(lib->ZSTD_CStreamOutSize()));
  auto made = WARD_TRY(lib->ZSTD_createCStream());
  if (!made) return ward::fail(ward::Errc::limit, "ZSTD_createCStream returned NULL");
  detail::Owned<Lib, ZSTD_CCtx, &zstd_stream_api::ZSTD_freeCStream> cctx(lib, made);
  detail::Window w = WARD_TRY(detail::Window::make(lib, shape.in_chunk, shape.out_cap));
  Streamed s;
  for (const auto& [param, v] : {std::pair{ZSTD_c_compressionLevel, shape.level},
                                 std::pair{ZSTD_c_checksumFlag, shape.checksum ? 1 : 0}}) {
    if (WARD_TRY(detail::is_error(lib, detail::value(WARD_TRY(lib->ZSTD_CCtx_setParameter(cctx.get(), param, v))), s)))
      return s;
  }
  for (std::size_t offset = 0;;) {
    const std::size_t n = std::min(shape.in_chunk, input.size() - offset);
    const bool last = offset + n == input.size();
    WARD_TRY(w.feed(input.subspan(offset, n)));
    offset += n;
    for (;;) {
      const Step step = WARD_TRY(detail::call(lib, w, s, hook, [&] {
        return lib->ZSTD_compressStream2(cctx.get(), w.out_buffer(), w.in_buffer(), last ? ZSTD_e_end : ZSTD_e_continue);
      }));
      if (s.zstd_error) return s;
      if (last ? step.ret == 0 : step.in_pos == n) break;
    }
    if (last) return s;
  }
}

// Decompresses `input` (frames, in chunks of shape.in_chunk), calling until each chunk is
// consumed and the out window was not left full while a frame is unfinished (the library may hold
// more; a finished frame returns 0, and calling again would start reading the next one).
template <class Lib>
ward::Result<Streamed> decompress_stream(Lib& lib, std::span<const char> input, StreamShape shape, const Hook& hook = {}) {
  if (!shape.in_chunk) shape.in_chunk = detail::value(WARD_TRY(lib->ZSTD_CStreamInSize()));
  if (!shape.out_cap) shape.out_cap = detail::value(WARD_TRY(lib->ZSTD_DStreamOutSize()));
  auto made = WARD_TRY(lib->ZSTD_createDStream());
  if (!made) return ward::fail(ward::Errc::limit, "ZSTD_createDStream returned NULL");
  detail::Owned<Lib, ZSTD_DCtx, &zstd_stream_api::ZSTD_freeDStream> dctx(lib, made);
  detail::Window w = WARD_TRY(detail::Window::make(lib, shape.in_chunk, shape.out_cap));
  Streamed s;
  std::size_t last_ret = 1;  // nothing decoded yet: a frame is still expected
  for (std::size_t offset = 0; offset < input.size();) {
    const std::size_t n = std::min(shape.in_chunk, input.size() - offset);
    WARD_TRY(w.feed(input.subspan(offset, n)));
    offset += n;
    for (;;) {
      const Step step = WARD_TRY(detail::call(
          lib, w, s, hook, [&] { return lib->ZSTD_decompressStream(dctx.get(), w.out_buffer(), w.in_buffer()); }));
      if (s.zstd_error) return s;
      last_ret = step.ret;
      if (step.in_pos == n && (step.out_pos < w.out_cap() || step.ret == 0)) break;
    }
  }
  s.truncated = last_ret != 0;
  return s;
}

// Runs `run` (a stream over `ext`) again from the start, up to `attempts` times in all, whenever
// it failed and the extension restarted while it ran: the restart took the stream's context.
// A failure without a restart is returned as it is.
template <class Api, class Run>
auto start_over_after_restart(ward::Extension<Api>& ext, unsigned attempts, Run&& run) -> decltype(run()) {
  for (unsigned a = 1;; ++a) {
    const auto before = ext.stats().restarts;
    auto r = run();
    if (r || ext.stats().restarts == before || a >= attempts) return r;
  }
}

}  // namespace zstd_ward
