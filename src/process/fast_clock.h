// The clock a domain's time accounting reads on every crossing (twice per call, twice per
// upcall). clock_gettime(CLOCK_MONOTONIC) costs ~24 ns here, which is a third of a null call;
// the CPU's time-stamp counter costs ~10 ns. So: the TSC scaled to nanoseconds, when the kernel
// keeps time with it itself (clocksource "tsc": the kernel has checked that it is invariant and
// synchronised across CPUs), CLOCK_MONOTONIC otherwise.
//
// Contract: fast_ns() is monotonic per thread up to the TSC's cross-CPU skew (callers clamp
// negative differences to 0) and counts nanoseconds at the TSC's calibrated rate; it has its own
// origin, so its values are compared only with each other, never with wire::mono_ns(). The first
// call calibrates (about 2 ms, once per process).
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

#include "ward/process/doorbell.h"

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace ward::detail {

struct TscScale {
  bool usable = false;
  double ns_per_tick = 0;
  std::uint64_t base_tick = 0;
  std::uint64_t base_ns = 0;
};

inline TscScale calibrate_tsc() {
  TscScale s;
#if defined(__x86_64__)
  std::ifstream f("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  std::string source;
  if (!(f >> source) || source != "tsc") return s;
  const std::uint64_t n0 = wire::mono_ns();
  const std::uint64_t c0 = __rdtsc();
  std::uint64_t n1 = n0;
  while (n1 - n0 < 2'000'000) n1 = wire::mono_ns();
  const std::uint64_t c1 = __rdtsc();
  if (c1 <= c0) return s;
  s.ns_per_tick = static_cast<double>(n1 - n0) / static_cast<double>(c1 - c0);
  s.base_tick = c1;
  s.base_ns = n1;
  s.usable = true;
#endif
  return s;
}

inline std::uint64_t fast_ns() {
#if defined(__x86_64__)
  static const TscScale scale = calibrate_tsc();
  if (scale.usable) {
    const std::uint64_t t = __rdtsc();
    const double delta = static_cast<double>(static_cast<std::int64_t>(t - scale.base_tick));
    return scale.base_ns + static_cast<std::uint64_t>(static_cast<std::int64_t>(delta * scale.ns_per_tick));
  }
#endif
  return wire::mono_ns();
}

}  // namespace ward::detail
