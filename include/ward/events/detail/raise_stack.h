// The raises in progress on the calling thread, which bound how deep events may nest (see
// NestingLimits in vocabulary.h). Kept apart from the event core: it is per-thread bookkeeping,
// not dispatch.
#pragma once

#include <cstdint>

namespace ward::detail {

// This thread's raises in progress: how many, and the event of each, outermost first (the
// event's core, as an identity). Constant-initialised and trivially destructible, so an access
// is a plain TLS access. Slots past kMaxNesting are never needed: no raise that deep is allowed.
inline constexpr std::uint32_t kMaxNesting = 256;
struct RaiseStack {
  std::uint32_t depth = 0;
  const void* events[kMaxNesting + 1] = {};
};
inline constinit thread_local RaiseStack tls_raises;

// One raise in progress on this thread, for its lifetime: a counter and one store, so that the
// one-handler raise stays near the cost of an indirect call (the frame keeps nothing itself: a
// value kept across the handler call would take a register the raise needs). The events are only
// looked at past the event's fast bound.
class RaiseFrame {
 public:
  explicit RaiseFrame(const void* event) noexcept {
    const std::uint32_t d = tls_raises.depth + 1;
    tls_raises.depth = d;
    tls_raises.events[d <= kMaxNesting ? d : kMaxNesting] = event;
  }
  ~RaiseFrame() { --tls_raises.depth; }
  RaiseFrame(const RaiseFrame&) = delete;
  RaiseFrame& operator=(const RaiseFrame&) = delete;

  // While this is the innermost frame: raises in progress on this thread, this one included.
  [[nodiscard]] static std::uint32_t depth() noexcept { return tls_raises.depth; }
  // While this is the innermost frame: raises of its event in progress on this thread, this one
  // included (meaningful up to kMaxNesting deep: deeper raises are refused before they nest).
  [[nodiscard]] static std::uint32_t same_event() noexcept {
    const std::uint32_t top = tls_raises.depth <= kMaxNesting ? tls_raises.depth : kMaxNesting;
    std::uint32_t n = 0;
    for (std::uint32_t i = 1; i <= top; ++i) n += tls_raises.events[i] == tls_raises.events[top] ? 1 : 0;
    return n;
  }
};

}  // namespace ward::detail
