// Progress of a long run (`ward rio torture`, `ward bench soak`), always on stderr so that stdout
// (tables, --json) stays machine-readable.
//
// Three modes: on a terminal a bar with counts, percentage and ETA, redrawn in place at most every
// `redraw_every`; elsewhere (a log, CI) one plain line every `line_every`; quiet: nothing. The
// final call (finish) always writes one last line unless quiet. The clock and the sink are
// injectable so the time-based behaviour is testable without sleeping. One object may be updated
// from several threads (a mutex orders them); it borrows nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

namespace ward::cli {

class Progress {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Mode { quiet, terminal, lines };
  struct Options {
    std::string label;                         // "ward rio torture"
    std::uint64_t total = 0;                   // 0: unknown (counts only, no bar or ETA)
    std::string unit;                          // "kills", "s"
    Mode mode = Mode::lines;                   // see mode_for()
    std::chrono::milliseconds line_every{5000};
    std::chrono::milliseconds redraw_every{100};
    std::function<Clock::time_point()> now = [] { return Clock::now(); };
    std::function<void(std::string_view)> write;  // default: write(2) to stderr
    int width = 0;                              // terminal columns; 0: ask the terminal, else 80
  };
  // quiet when asked, terminal when stderr is one, lines otherwise.
  static Mode mode_for(bool quiet);

  explicit Progress(Options o);
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  // On a terminal a bar left half-drawn would swallow the next line: end it.
  ~Progress();

  // `done` units are complete; `note` (optional) says what the run has seen so far.
  void update(std::uint64_t done, std::string_view note = {});
  // The last line: the last count given to update(), the time taken, and `note`.
  void finish(std::string_view note = {});

  // "4s", "3m07s", "2h05m": how long, at a glance.
  static std::string duration(std::chrono::seconds s);

 private:
  std::string status(std::uint64_t done, Clock::time_point now, std::string_view note) const;
  std::string counted(std::uint64_t done) const;
  void emit(const std::string& text);

  Options o_;
  std::mutex mu_;
  Clock::time_point start_;
  Clock::time_point last_;
  std::uint64_t done_ = 0;
  bool drawn_ = false;     // terminal: a bar is on the current line
  bool finished_ = false;
};

}  // namespace ward::cli
