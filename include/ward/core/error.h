// Errors are values. Every boundary in ward returns Result<T> (std::expected); no exception
// crosses a domain boundary. The error kinds are few on purpose: recovery decides what to do
// from the kind alone.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

namespace ward {

enum class Errc : std::uint8_t {
  crashed,      // the extension died on a signal (SIGSEGV, SIGABRT, ...)
  exited,       // the extension called exit()
  hung,         // a call exceeded the policy's timeout; the extension was killed
  violation,    // forbidden system call, out-of-arena pointer, malformed message, bad handle
  limit,        // memory, arena, CPU time or another resource limit was exhausted
  bad_data,     // a verifier rejected a value the extension returned
  load_failed,  // the plugin could not be loaded: missing file, missing symbol, bad setup
  misuse,       // the host used the API wrongly (a buffer larger than the arena, a null buffer, ...)
};

[[nodiscard]] std::string_view to_string(Errc kind) noexcept;

struct Error {
  Errc kind = Errc::misuse;
  std::string plugin;    // the plugin's file name, or the domain's name if it has one
  std::string function;  // "device_api::write", "<load>" while loading, empty if not in a call
  std::string detail;    // the cause in words: "killed by SIGSEGV", "forbidden system call openat"
  int signal = 0;        // the signal that killed the extension, when there was one
  int exit_status = -1;  // the extension's exit status, when it exited
  int syscall = -1;      // the forbidden system call's number, for seccomp violations
  bool earlier = false;  // true when this call failed because the domain had already failed

  // "textxform (textxform_api::transform): crashed: killed by SIGSEGV"
  [[nodiscard]] std::string message() const;
};

// "what: <strerror(err)>": the words for a system call's failure in an Error's detail.
[[nodiscard]] std::string errno_text(std::string_view what, int err);

template <class T>
using Result = std::expected<T, Error>;

[[nodiscard]] inline std::unexpected<Error> fail(Errc kind, std::string detail) {
  Error e;
  e.kind = kind;
  e.detail = std::move(detail);
  return std::unexpected<Error>(std::move(e));
}

}  // namespace ward

// WARD_TRY(expr): evaluates `expr`, a Result; if it holds an error, returns that error from the
// enclosing function (which must return some Result); otherwise the expression's value is the
// result's value (nothing for Result<void>):
//   auto fd = WARD_TRY(open_arena());   // Result<int> -> int
//   WARD_TRY(write_boot_area());        // Result<void>
// A GNU statement expression (g++ and clang): the one way to say "propagate" once in C++23.
#define WARD_TRY(...)                                                                         \
  __extension__({                                                                             \
    auto&& ward_try_result_ = (__VA_ARGS__);                                                  \
    if (!ward_try_result_) [[unlikely]]                                                       \
      return std::unexpected(std::move(ward_try_result_).error());                            \
    *std::move(ward_try_result_);                                                             \
  })
