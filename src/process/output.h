// The output channel: what an extension writes to its stdout and stderr, delivered to the sink
// its policy names, line by line, labelled, capped.
//
// Why: a child that inherits the host's fds 1 and 2 shares the host's open file descriptions. It
// could rewind and overwrite the host's log, read what the user types at the host's terminal, and
// write without limit into the host's stdout. Instead each domain gets two pipes; the child holds
// only their write ends (as its fds 1 and 2), the host holds the read ends.
//
// Who runs what:
//   * the pump thread (one per host process, started with the first domain) waits with epoll on
//     every domain's two read ends and its pidfd. It always reads at once, whatever happens to
//     the output afterwards, so an extension never blocks on a full pipe for longer than it takes
//     to read it (a blocked write would otherwise run down its call timeout: a false `hung`).
//     When the child dies (pidfd readable) it drains what is left, flushes unterminated lines,
//     posts the final notice and closes the pipes.
//   * the delivery thread (one per process) hands queued lines to the sinks: writes to the host's
//     stderr and user callbacks, either of which can be slow or block for good. The queue between
//     the two is bounded (kQueueBytes); when it is full, lines are dropped and counted ("the sink
//     is too slow"), never waited for.
// Both threads run with every signal blocked, so the host's signal handlers never run on them
// and a write to a closed stderr pipe fails with EPIPE instead of killing the host.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "ward/core/error.h"
#include "ward/core/policy.h"

namespace ward::detail {

// Queued-but-undelivered text, process-wide, beyond which new lines are dropped.
inline constexpr std::uint64_t kOutputQueueBytes = 1ull << 20;

// What a terminal would act on, made visible: bytes below 0x20 (tab excepted) and 0x7f, C1
// controls, bidirectional and line-separator code points, and bytes that are not valid UTF-8
// become "\xNN" (each byte of the sequence). Everything else is kept as it is.
[[nodiscard]] std::string escape_output(std::string_view raw);

// One domain's output, from raw bytes to labelled lines: line assembly per stream, splitting of
// overlong lines, escaping, the opt-in lifetime budget, the token bucket, and notices about what was
// dropped. Not thread-safe (the pump thread owns it); the caller supplies the time, so it can be
// tested and fuzzed without threads or clocks.
class OutputShaper {
 public:
  // Offers one finished line to the sink's queue; false if the queue refused it (full). Notices
  // are always accepted (there are at most one a second per domain, plus two).
  using Emit = std::function<bool(OutputStream, std::string&&)>;

  OutputShaper(const Policy& policy, Emit emit);
  // Bytes the extension wrote to stream `s` (out or err), read at monotonic time `now_ns`.
  void feed(OutputStream s, std::string_view bytes, std::uint64_t now_ns);
  // Stream `s` reached its end: its unterminated last line is delivered as it is.
  void end_of_stream(OutputStream s, std::uint64_t now_ns);
  // The extension is gone: both streams end, and a last notice reports what is still unreported.
  void finish(std::uint64_t now_ns);
  // When a summary of dropped output will be due (at most one a second), if any is pending.
  [[nodiscard]] std::optional<std::uint64_t> notice_due() const;
  // Posts the summary if it is due at `now_ns`.
  void tick(std::uint64_t now_ns);

 private:
  enum Reason : unsigned { kRate = 1, kBudget = 2, kSlowSink = 4 };
  void piece(OutputStream s, std::string_view text, bool newline, bool split, std::uint64_t now_ns);
  void drop(std::uint64_t bytes, Reason why, std::uint64_t now_ns);
  void summary(std::uint64_t now_ns);

  Emit emit_;
  bool discard_;
  std::uint64_t line_max_, rate_, burst_, budget_;
  std::uint64_t budget_left_;
  bool exhausted_ = false;
  double tokens_;
  std::uint64_t refilled_ns_ = 0;
  std::string partial_[2];
  std::uint64_t dropped_ = 0;   // bytes dropped and not yet reported
  unsigned reasons_ = 0;        // why, for the next notice
  std::uint64_t drop_since_ns_ = 0;
  std::uint64_t last_notice_ns_ = 0;
  bool noticed_once_ = false;
};

// The two pipes of a domain that is about to be spawned. Every end is close-on-exec and above
// descriptor 9, so posix_spawn's dup2 onto 1 and 2 cannot collide with the arena's descriptor 3
// and always clears close-on-exec on the copy. Closes whatever it still holds when destroyed.
class OutputPipes {
 public:
  [[nodiscard]] static Result<OutputPipes> open();
  OutputPipes(OutputPipes&& o) noexcept;
  OutputPipes& operator=(OutputPipes&&) = delete;
  ~OutputPipes();
  // The write end the child gets as descriptor `stdfd` (1 or 2).
  [[nodiscard]] int child_end(int stdfd) const { return write_[stdfd == 2 ? 1 : 0]; }

 private:
  friend Result<void> attach_output(OutputPipes pipes, std::string name, const Policy& policy, int pidfd);
  OutputPipes() = default;
  int read_[2] = {-1, -1};
  int write_[2] = {-1, -1};
};

// After the child is spawned: closes the host's copies of the write ends (so the pipes end when
// the child does) and hands the read ends to the pump, with a duplicate of the child's pidfd to
// learn of its death. `name` labels every line. Errors: load_failed (no descriptors, no epoll).
[[nodiscard]] Result<void> attach_output(OutputPipes pipes, std::string name, const Policy& policy, int pidfd);

}  // namespace ward::detail
