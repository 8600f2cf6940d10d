// Compiling a Policy into the seccomp filter a domain's child installs (see helper/audit.c).
#pragma once

#include <linux/audit.h>
#include <linux/filter.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ward/core/error.h"
#include "ward/core/policy.h"

namespace ward::detail {

// The AUDIT_ARCH a filter compares seccomp_data.arch with (ward's filters know this ABI only).
#if defined(__x86_64__)
inline constexpr std::uint32_t kNativeArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
inline constexpr std::uint32_t kNativeArch = AUDIT_ARCH_AARCH64;
#else
#error "ward's seccomp filters know x86-64 and arm64"
#endif

// The BPF program for `policy`, specialised to the child's pid (signals may target only itself).
// Anything not allowed traps with SIGSYS, which the helper reports by system call number.
[[nodiscard]] Result<std::vector<sock_filter>> compile_filter(const Policy& policy, pid_t child);

// "openat" for the native architecture's number, or "syscall 12345" when unknown.
[[nodiscard]] std::string syscall_name(int nr);

}  // namespace ward::detail
