// Compiling a Policy into the seccomp filter a domain's child installs (see helper/audit.c).
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "ward/core/error.h"
#include "ward/core/policy.h"

namespace ward::detail {

// The BPF program for `policy`, specialised to the child's pid (signals may target only itself).
// Anything not allowed traps with SIGSYS, which the helper reports by system call number.
[[nodiscard]] Result<std::vector<sock_filter>> compile_filter(const Policy& policy, pid_t child);

// "openat" for the native architecture's number, or "syscall 12345" when unknown.
[[nodiscard]] std::string syscall_name(int nr);

}  // namespace ward::detail
