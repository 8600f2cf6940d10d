// Policy: what a domain's extension may do, built once by a Builder and immutable afterwards.
//
// The default is for a pure compute plugin: no files, no sockets, no new processes or threads,
// no executable memory after loading, writes only to stdout/stderr. Each option that loosens
// isolation starts with `unsafe_` so it stands out in review.
//
// Output: an extension's stdout and stderr are never the host's. They are pipes the host drains
// (one ward thread for the whole process), cut into lines, labelled with the extension's name and
// stream, and delivered to the sink the policy names: the host's stderr (default), a callback, or
// nowhere. A rate limit (token bucket) bounds what gets through, and optionally a lifetime byte
// budget per instance (off by default, see lifetime_output_budget); beyond them output is read
// and dropped, never left to block the extension, and a `notice` line
// says how much was dropped (at most one a second per instance, and one when it ends). Text is
// escaped before delivery: control characters, C1 controls, bidirectional overrides and invalid
// UTF-8 arrive as \xNN, so a line cannot move a terminal's cursor or forge another line.
//
// Limits mean "misbehaving now", never "has lived long": ward sits in hosts that run for months,
// and a limit that counts over an instance's whole life ends a healthy extension for having
// served long. So the defaults are all levels or rates: the call timeout (per call), the CPU rate
// (cores over a window), the memory limit (address space held now), open files and handles (held
// now), the output rate. The two lifetime totals (lifetime_cpu_seconds, lifetime_output_budget)
// are off by default and carry `lifetime` in their names.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ward/core/error.h"

namespace ward {

// Which stream a line of an extension's output came from. `notice` lines are ward's own (output
// dropped, budget exhausted), never the extension's words.
enum class OutputStream : std::uint8_t { out, err, notice };
[[nodiscard]] std::string_view to_string(OutputStream s) noexcept;  // "stdout", "stderr", "ward"

enum class OutputSink : std::uint8_t {
  host_stderr,  // "[name stdout] text" lines on the host's stderr (the default)
  callback,     // the policy's OutputCallback
  discard,      // read and thrown away (no notices either)
};

// Receives one line: the extension's name, the stream, the escaped text without its newline.
// Called on ward's output thread, one line at a time (never concurrently with itself, for all
// domains together), possibly after the Domain that produced the line is gone: capture what it
// needs by value or shared_ptr. It must not block for long: while it runs, the output of every
// extension queues up, and beyond the queue's bound lines are dropped ("the sink is too slow").
using OutputCallback = std::function<void(std::string_view extension, OutputStream stream, std::string_view text)>;

// Appended to each piece of a line longer than the policy's output_line_max but the last.
inline constexpr std::string_view kOutputSplitMarker = " [...]";

class Policy {
 public:
  class Builder;
  [[nodiscard]] static Builder builder();
  // The defaults (same as builder().build()).
  Policy();

  std::chrono::nanoseconds timeout() const { return timeout_; }
  std::chrono::nanoseconds load_timeout() const { return load_timeout_; }
  std::chrono::nanoseconds spin() const { return spin_; }
  std::uint64_t memory() const { return memory_; }
  // RLIMIT_CPU over the child's whole life; 0 (the default): none.
  std::uint64_t lifetime_cpu_seconds() const { return lifetime_cpu_; }
  // The CPU rate: at most cpu_rate_cores() CPUs' worth of time per cpu_rate_window(); 0: none.
  double cpu_rate_cores() const { return cpu_cores_; }
  std::chrono::milliseconds cpu_rate_window() const { return cpu_window_; }
  // The memory growth rate: at most memory_growth_bytes() more resident memory at the end of a
  // memory_growth_window() than at its start; 0 bytes (the default): none.
  std::uint64_t memory_growth_bytes() const { return growth_bytes_; }
  std::chrono::milliseconds memory_growth_window() const { return growth_window_; }
  std::uint64_t open_files() const { return open_files_; }
  std::uint64_t arena_size() const { return arena_size_; }
  // Bytes of the arena set aside as sandbox memory (iface/sandbox.h); 0: none.
  std::uint64_t sandbox_memory() const {
    return sandbox_ != kAutoSandbox ? sandbox_ : std::min<std::uint64_t>(1ull << 20, arena_size_ / 4);
  }
  std::uint64_t handle_quota() const { return handles_; }
  unsigned max_nesting() const { return max_nesting_; }
  bool allows_file_open() const { return files_; }
  // True if path-based file calls fail with EACCES instead of being a violation (refuse_files).
  bool refuses_files() const { return refuse_files_; }
  bool allows_sockets() const { return sockets_; }
  bool allows_process_creation() const { return processes_; }
  bool allows_threads() const { return threads_; }
  bool allows_executable_memory() const { return exec_memory_; }
  const std::vector<std::string>& extra_syscalls() const { return extra_; }
  // RLIMIT_FSIZE of the child: the largest file it may write (0 unless files are allowed).
  std::uint64_t max_file_size() const { return file_size_; }
  OutputSink output_sink() const { return sink_; }
  // Set iff output_sink() == OutputSink::callback.
  const std::shared_ptr<const OutputCallback>& output_callback() const { return callback_; }
  // 0 (the default): no lifetime budget, only the rate.
  std::uint64_t lifetime_output_budget() const { return out_budget_; }
  std::uint64_t output_rate() const { return out_rate_; }
  std::uint64_t output_burst() const { return out_burst_; }
  std::uint64_t output_line_max() const { return out_line_max_; }
  // Logical protection domain: may the extension call host service `label` ("host_api::log")?
  // Without any grant in the policy, every declared service is granted.
  [[nodiscard]] bool grants(std::string_view label) const;
  [[nodiscard]] bool restricts_services() const { return restricted_; }

  // One line per setting, for logs and `--help` output.
  [[nodiscard]] std::string describe() const;

 private:
  friend class Builder;
  std::chrono::nanoseconds timeout_{std::chrono::seconds(5)};
  std::chrono::nanoseconds load_timeout_{std::chrono::seconds(10)};
  std::chrono::nanoseconds spin_{std::chrono::microseconds(50)};
  std::uint64_t memory_ = 512ull << 20;
  std::uint64_t lifetime_cpu_ = 0;
  double cpu_cores_ = 1.0;
  std::chrono::milliseconds cpu_window_{std::chrono::seconds(10)};
  std::uint64_t growth_bytes_ = 0;
  std::chrono::milliseconds growth_window_{std::chrono::seconds(10)};
  std::uint64_t open_files_ = 16;
  std::uint64_t arena_size_ = 4ull << 20;
  static constexpr std::uint64_t kAutoSandbox = ~0ull;  // 1 MiB, or a quarter of a smaller arena
  std::uint64_t sandbox_ = kAutoSandbox;
  std::uint64_t handles_ = 1024;
  unsigned max_nesting_ = 32;
  bool refuse_files_ = false;
  bool files_ = false, sockets_ = false, processes_ = false, threads_ = false, exec_memory_ = false;
  std::vector<std::string> extra_;
  std::uint64_t file_size_ = 0;
  OutputSink sink_ = OutputSink::host_stderr;
  std::shared_ptr<const OutputCallback> callback_;
  std::uint64_t out_budget_ = 0;
  std::uint64_t out_rate_ = 64ull << 10;
  std::uint64_t out_burst_ = 256ull << 10;
  std::uint64_t out_line_max_ = 4096;
  bool restricted_ = false;
  std::vector<std::string> grants_;  // "iface::fn" or "iface" (all of it)
};

class Policy::Builder {
 public:
  // Longest a single call may run inside the extension (time spent in host services excluded).
  // This is also the per-call CPU budget: without unsafe_allow_threads the child has one thread,
  // so the CPU time a call spends is at most the extension's wall time the timeout counts.
  Builder& timeout(std::chrono::nanoseconds t);
  // Longest loading may take (helper start, dlopen, constructors, entry).
  Builder& load_timeout(std::chrono::nanoseconds t);
  // How long a waiting side spins before sleeping on the futex; 0 sleeps at once.
  Builder& spin(std::chrono::nanoseconds t);
  // Address-space limit of the whole child (RLIMIT_AS), arena included.
  Builder& memory(std::uint64_t bytes);
  // The CPU rate: the child is ended (Errc::limit) when, over one window of `window`, it used
  // more than `cores` CPUs' worth of time (all its threads together; host services, which run
  // in the host, do not count). Default: 1 core over 10 s. A child without unsafe_allow_threads
  // can never exceed 1 core, so by default this only ends threaded extensions that keep more
  // than one core busy for a whole window, or background threads spinning between calls (the
  // call timeout cannot see those). cores 0 turns it off; otherwise cores 0.01 .. 1024, window
  // 100 ms .. 1 h. Checked by ward's reaper thread at the end of each window (tumbling
  // windows), so a burst that straddles two windows counts half in each.
  Builder& cpu_rate(double cores, std::chrono::milliseconds window);
  // The memory growth rate, off by default (0 bytes): the child is ended (Errc::limit) when its
  // resident memory (all of it: heap, stacks, the arena pages it touched) is more than `bytes`
  // larger at the end of a window of `window` than at its start: a leak, caught while it leaks
  // and long before memory() is reached, without ending an extension that holds much but stays
  // flat. Windows tumble as cpu_rate's do, and the first one starts once the extension has loaded
  // (what loading maps is not growth). A legitimate burst bigger than `bytes` within one window
  // (a cache warming up, a large input) also ends the child: choose `bytes` above the largest
  // one. bytes 1 MiB .. 1 TiB, window 100 ms .. 1 h.
  Builder& memory_growth(std::uint64_t bytes, std::chrono::milliseconds window);
  // LIFETIME LIMIT, off by default (0). RLIMIT_CPU: the child is ended (Errc::limit, SIGXCPU)
  // once it has used `s` CPU-seconds *in its whole life*, however it spent them. This kills
  // healthy long-lived extensions: one that serves a busy host is ended after `s` seconds of
  // honest work (a restart gives it a fresh allowance). Prefer the call timeout and cpu_rate,
  // which mean "misbehaving now"; use this only for extensions that are meant to be short-lived.
  Builder& lifetime_cpu_seconds(std::uint64_t s);
  Builder& open_files(std::uint64_t n);
  // Size of the shared arena holding every marshaled argument and result.
  Builder& arena_size(std::uint64_t bytes);
  // Sandbox memory (iface/sandbox.h: Instance<Api>::alloc): a region of the arena, beside the
  // frames, that the host allocates from and the extension keeps pointers into between calls.
  // Default 1 MiB (a quarter of an arena smaller than 4 MiB); 0: none. The rest of the arena must
  // keep at least 64 KiB for the boot area and the frames.
  Builder& sandbox_memory(std::uint64_t bytes);
  // Most host objects the extension may hold handles to at once (exceeding it: Errc::limit).
  Builder& handles(std::uint64_t n);
  // Deepest nesting of calls into this domain on one host thread (host -> extension -> host
  // service -> extension -> ...), counting the outermost call as 1. Each level costs host stack
  // (the waiting call plus the host service's frames), so a recursion the extension drives must
  // end with an error before the host's stack does: the call that would exceed it fails with
  // Errc::limit. 1 .. 1024; default 32.
  Builder& max_nesting(unsigned depth);

  // Path-based file calls (open, stat, access, readlink, mkdir, unlink, rename, ...) fail with
  // EACCES instead of ending the extension as a violation. Nothing more is reachable: no file
  // is opened, so no descriptor exists to read or write. For libraries that probe the file
  // system and cope when refused (SQLite opens /dev/urandom to seed its PRNG and falls back to
  // the time and pid; locale and config lookups) — the default (a violation) suits code that
  // has no business touching files at all. Contradicts unsafe_allow_file_open (misuse).
  Builder& refuse_files();
  Builder& unsafe_allow_file_open();
  Builder& unsafe_allow_sockets();
  Builder& unsafe_allow_process_creation();
  Builder& unsafe_allow_threads();
  Builder& unsafe_allow_executable_memory();
  Builder& unsafe_allow_syscall(std::string name);
  // With unsafe_allow_file_open only: the largest file the extension may write (RLIMIT_FSIZE;
  // beyond it, SIGXFSZ). Default 0: no file may grow at all; wire::kNoLimit (~0): no limit.
  Builder& max_file_size(std::uint64_t bytes);

  // Where the extension's output goes (see the top of this header). Default: the host's stderr.
  Builder& output_to_stderr();
  Builder& output_to_callback(OutputCallback cb);
  Builder& discard_output();
  // LIFETIME LIMIT, off by default (0). Most bytes of output one instance may deliver in its
  // whole life (a restarted instance starts afresh); counted as the extension wrote them,
  // newlines included. This silences healthy long-lived extensions: one that logs a line a
  // second falls silent for good after weeks. output_rate is the limit that means "too much now".
  Builder& lifetime_output_budget(std::uint64_t bytes);
  // Token bucket over the same bytes: `bytes_per_second` sustained, `burst` at once (defaults
  // 64 KiB/s and 256 KiB). Lines that do not fit are dropped whole, not delayed.
  Builder& output_rate(std::uint64_t bytes_per_second, std::uint64_t burst);
  // Longest line delivered as one (default 4096 bytes, 64 B .. 1 MiB): longer ones are split,
  // each piece but the last ending in kOutputSplitMarker.
  Builder& output_line_max(std::uint64_t bytes);

  // Logical protection domain: grant host service `label`, either one function
  // ("host_api::log") or a whole interface ("host_api"). Once any grant (or grant_none) is given,
  // the extension's service tables contain only what was granted; calling anything else is a
  // policy violation. ward::service<&host_api::log>() spells a label from the declaration.
  Builder& grant(std::string label);
  Builder& grant_none();

  // Validates the settings: unknown system call names, an arena too small to hold a frame, a
  // zero timeout, a memory limit smaller than the arena, a callback sink without a callback, a
  // burst smaller than one line, a file size without file access.
  [[nodiscard]] Result<Policy> build() const;

 private:
  Policy p_;
};

}  // namespace ward
