#include "ward/core/policy.h"

#include <seccomp.h>

#include <cstdlib>
#include <sstream>

namespace ward {

Policy::Policy() = default;

Policy::Builder Policy::builder() { return Builder{}; }

Policy::Builder& Policy::Builder::timeout(std::chrono::nanoseconds t) { p_.timeout_ = t; return *this; }
Policy::Builder& Policy::Builder::load_timeout(std::chrono::nanoseconds t) { p_.load_timeout_ = t; return *this; }
Policy::Builder& Policy::Builder::spin(std::chrono::nanoseconds t) { p_.spin_ = t; return *this; }
Policy::Builder& Policy::Builder::memory(std::uint64_t b) { p_.memory_ = b; return *this; }
Policy::Builder& Policy::Builder::lifetime_cpu_seconds(std::uint64_t s) { p_.lifetime_cpu_ = s; return *this; }
Policy::Builder& Policy::Builder::cpu_rate(double cores, std::chrono::milliseconds window) {
  p_.cpu_cores_ = cores;
  p_.cpu_window_ = window;
  return *this;
}
Policy::Builder& Policy::Builder::memory_growth(std::uint64_t bytes, std::chrono::milliseconds window) {
  p_.growth_bytes_ = bytes;
  p_.growth_window_ = window;
  return *this;
}
Policy::Builder& Policy::Builder::open_files(std::uint64_t n) { p_.open_files_ = n; return *this; }
Policy::Builder& Policy::Builder::arena_size(std::uint64_t b) { p_.arena_size_ = b; return *this; }
Policy::Builder& Policy::Builder::sandbox_memory(std::uint64_t b) { p_.sandbox_ = b; return *this; }
Policy::Builder& Policy::Builder::handles(std::uint64_t n) { p_.handles_ = n; return *this; }
Policy::Builder& Policy::Builder::max_nesting(unsigned d) { p_.max_nesting_ = d; return *this; }
Policy::Builder& Policy::Builder::grant(std::string label) {
  p_.restricted_ = true;
  p_.grants_.push_back(std::move(label));
  return *this;
}
Policy::Builder& Policy::Builder::grant_none() {
  p_.restricted_ = true;
  return *this;
}

bool Policy::grants(std::string_view label) const {
  if (!restricted_) return true;
  const auto sep = label.find("::");
  const std::string_view iface = sep == std::string_view::npos ? label : label.substr(0, sep);
  for (const auto& g : grants_)
    if (g == label || g == iface) return true;
  return false;
}

Policy::Builder& Policy::Builder::refuse_files() { p_.refuse_files_ = true; return *this; }
Policy::Builder& Policy::Builder::unsafe_allow_file_open() { p_.files_ = true; return *this; }
Policy::Builder& Policy::Builder::unsafe_allow_sockets() { p_.sockets_ = true; return *this; }
Policy::Builder& Policy::Builder::unsafe_allow_process_creation() { p_.processes_ = true; return *this; }
Policy::Builder& Policy::Builder::unsafe_allow_threads() { p_.threads_ = true; return *this; }
Policy::Builder& Policy::Builder::unsafe_allow_executable_memory() { p_.exec_memory_ = true; return *this; }
Policy::Builder& Policy::Builder::unsafe_allow_syscall(std::string name) {
  p_.extra_.push_back(std::move(name));
  return *this;
}
Policy::Builder& Policy::Builder::max_file_size(std::uint64_t b) { p_.file_size_ = b; return *this; }

std::string_view to_string(OutputStream s) noexcept {
  switch (s) {
    case OutputStream::out: return "stdout";
    case OutputStream::err: return "stderr";
    case OutputStream::notice: return "ward";
  }
  return "?";
}

Policy::Builder& Policy::Builder::output_to_stderr() {
  p_.sink_ = OutputSink::host_stderr;
  p_.callback_.reset();
  return *this;
}
Policy::Builder& Policy::Builder::output_to_callback(OutputCallback cb) {
  p_.sink_ = OutputSink::callback;
  p_.callback_ = cb ? std::make_shared<const OutputCallback>(std::move(cb)) : nullptr;
  return *this;
}
Policy::Builder& Policy::Builder::discard_output() {
  p_.sink_ = OutputSink::discard;
  p_.callback_.reset();
  return *this;
}
Policy::Builder& Policy::Builder::lifetime_output_budget(std::uint64_t b) { p_.out_budget_ = b; return *this; }
Policy::Builder& Policy::Builder::output_rate(std::uint64_t per_second, std::uint64_t burst) {
  p_.out_rate_ = per_second;
  p_.out_burst_ = burst;
  return *this;
}
Policy::Builder& Policy::Builder::output_line_max(std::uint64_t b) { p_.out_line_max_ = b; return *this; }

Result<Policy> Policy::Builder::build() const {
  if (p_.timeout_.count() <= 0) return fail(Errc::misuse, "policy: timeout must be positive");
  if (p_.load_timeout_.count() <= 0) return fail(Errc::misuse, "policy: load timeout must be positive");
  if (p_.spin_.count() < 0) return fail(Errc::misuse, "policy: spin must not be negative");
  if (p_.arena_size_ < (64u << 10))
    return fail(Errc::misuse, "policy: arena_size must be at least 64 KiB (it also holds the boot area)");
  if (p_.arena_size_ > (1ull << 36)) return fail(Errc::misuse, "policy: arena_size above 64 GiB");
  if (p_.sandbox_ != kAutoSandbox && (p_.sandbox_ > p_.arena_size_ || p_.arena_size_ - p_.sandbox_ < (64u << 10)))
    return fail(Errc::misuse, "policy: sandbox_memory must leave at least 64 KiB of the arena (arena_size " +
                                  std::to_string(p_.arena_size_) + ") for the boot area and the frames");
  if (p_.memory_ != 0 && p_.memory_ < p_.arena_size_ + (32ull << 20))
    return fail(Errc::misuse, "policy: memory limit must exceed the arena size by at least 32 MiB "
                              "(the child maps the arena, libc and the plugin too)");
  if (!(p_.cpu_cores_ == 0 || (p_.cpu_cores_ >= 0.01 && p_.cpu_cores_ <= 1024)))
    return fail(Errc::misuse, "policy: cpu_rate cores must be 0 (off) or 0.01 .. 1024");
  if (p_.cpu_cores_ != 0 && (p_.cpu_window_ < std::chrono::milliseconds(100) || p_.cpu_window_ > std::chrono::hours(1)))
    return fail(Errc::misuse, "policy: cpu_rate window must be 100 ms .. 1 h");
  if (p_.growth_bytes_ != 0 && (p_.growth_bytes_ < (1ull << 20) || p_.growth_bytes_ > (1ull << 40)))
    return fail(Errc::misuse, "policy: memory_growth bytes must be 0 (off) or 1 MiB .. 1 TiB");
  if (p_.growth_bytes_ != 0 &&
      (p_.growth_window_ < std::chrono::milliseconds(100) || p_.growth_window_ > std::chrono::hours(1)))
    return fail(Errc::misuse, "policy: memory_growth window must be 100 ms .. 1 h");
  if (p_.max_nesting_ == 0 || p_.max_nesting_ > 1024) return fail(Errc::misuse, "policy: max_nesting must be 1 .. 1024");
  if (p_.handles_ == 0 || p_.handles_ > (1u << 24)) return fail(Errc::misuse, "policy: handles must be 1 .. 16M");
  if (p_.open_files_ != 0 && p_.open_files_ < 4)
    return fail(Errc::misuse, "policy: open_files must be at least 4 (stdio and the arena)");
  if (p_.refuse_files_ && p_.files_)
    return fail(Errc::misuse, "policy: refuse_files and unsafe_allow_file_open contradict each other");
  if (p_.file_size_ != 0 && !p_.files_)
    return fail(Errc::misuse, "policy: max_file_size needs unsafe_allow_file_open (without it no file can be written)");
  if (p_.sink_ == OutputSink::callback && !p_.callback_)
    return fail(Errc::misuse, "policy: output_to_callback needs a callback");
  if (p_.out_line_max_ < 64 || p_.out_line_max_ > (1u << 20))
    return fail(Errc::misuse, "policy: output_line_max must be 64 B .. 1 MiB");
  if (p_.out_rate_ == 0) return fail(Errc::misuse, "policy: output rate must be positive (discard_output drops everything)");
  if (p_.out_burst_ <= p_.out_line_max_)
    return fail(Errc::misuse, "policy: output burst must exceed output_line_max (or no full line could ever pass)");
  for (const auto& g : p_.grants_)
    if (g.empty() || g.find(' ') != std::string::npos) return fail(Errc::misuse, "policy: bad grant '" + g + "'");
  for (const auto& name : p_.extra_)
    if (seccomp_syscall_resolve_name(name.c_str()) == __NR_SCMP_ERROR)
      return fail(Errc::misuse, "policy: unknown system call '" + name + "'");
  return p_;
}

std::string Policy::describe() const {
  std::ostringstream o;
  auto ms = [](std::chrono::nanoseconds t) { return std::chrono::duration<double, std::milli>(t).count(); };
  o << "timeout " << ms(timeout_) << " ms, load timeout " << ms(load_timeout_) << " ms, spin "
    << ms(spin_) * 1000 << " us, memory " << (memory_ >> 20) << " MiB, cpu rate ";
  if (cpu_cores_ == 0) o << "off";
  else o << cpu_cores_ << " cores over " << cpu_window_.count() << " ms";
  if (growth_bytes_ != 0) o << ", memory growth " << (growth_bytes_ >> 20) << " MiB over " << growth_window_.count() << " ms";
  if (lifetime_cpu_ != 0) o << ", LIFETIME cpu " << lifetime_cpu_ << " s";
  o << ", open files " << open_files_ << ", arena " << (arena_size_ >> 10) << " KiB (sandbox memory " << (sandbox_memory() >> 10)
    << " KiB), handles " << handles_;
  if (files_) o << ", UNSAFE file open";
  if (refuse_files_) o << ", file calls refused (EACCES)";
  if (sockets_) o << ", UNSAFE sockets";
  if (processes_) o << ", UNSAFE process creation";
  if (threads_) o << ", UNSAFE threads";
  if (exec_memory_) o << ", UNSAFE executable memory";
  for (const auto& s : extra_) o << ", UNSAFE syscall " << s;
  if (file_size_ != 0) o << ", UNSAFE files up to " << file_size_ << " bytes";
  switch (sink_) {
    case OutputSink::host_stderr: o << ", output to stderr"; break;
    case OutputSink::callback: o << ", output to a callback"; break;
    case OutputSink::discard: o << ", output discarded"; break;
  }
  if (sink_ != OutputSink::discard)
    o << " (" << (out_budget_ != 0 ? "LIFETIME budget " + std::to_string(out_budget_ >> 10) + " KiB, " : "") << (out_rate_ >> 10) << " KiB/s, burst "
      << (out_burst_ >> 10) << " KiB, lines up to " << out_line_max_ << " B)";
  if (restricted_) {
    o << ", services granted:";
    if (grants_.empty()) o << " none";
    for (const auto& g : grants_) o << " " << g;
  }
  return o.str();
}

}  // namespace ward
