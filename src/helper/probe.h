// Reading memory the extension points at, without trusting the pointer: what the child does with
// an entry's table (main.cc) and with a descriptor it walks (deep_walk.cc).
//
// Threads: one at a time (the handlers jump back to a single buffer). Signals: SIGSEGV and SIGBUS
// are caught only while a guarded function runs; the previous dispositions (the plugin's own, if
// it installed any) are restored before returning.
#pragma once

#include <cstddef>

namespace ward::probe {

// Whether `p` lies in a loaded object's executable segment: what a function pointer must do.
// Reads the loader's own lists (no system call, so it works under the filter).
[[nodiscard]] bool in_executable_segment(const void* p);

// Runs fn(arg); a fault inside it (SIGSEGV, SIGBUS) ends it early and makes this return false.
// fn must leave nothing that needs unwinding (no destructors, no locks) on its stack.
[[nodiscard]] bool guarded(void (*fn)(void*), void* arg);

// Copies n bytes, or returns false if they are not all readable.
[[nodiscard]] bool copy_readable(const void* src, void* dst, std::size_t n);

}  // namespace ward::probe
