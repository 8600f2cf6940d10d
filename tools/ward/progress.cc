#include "progress.h"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>

namespace ward::cli {

Progress::Mode Progress::mode_for(bool quiet) {
  if (quiet) return Mode::quiet;
  return ::isatty(STDERR_FILENO) ? Mode::terminal : Mode::lines;
}

Progress::Progress(Options o) : o_(std::move(o)) {
  if (!o_.write)
    o_.write = [](std::string_view s) {
      // Unbuffered and whole: stderr may be shared with other writers' lines.
      while (!s.empty()) {
        const ssize_t n = ::write(STDERR_FILENO, s.data(), s.size());
        if (n <= 0) return;
        s.remove_prefix(static_cast<std::size_t>(n));
      }
    };
  if (o_.width <= 0) {
    winsize ws{};
    o_.width = o_.mode == Mode::terminal && ::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20 ? ws.ws_col : 80;
  }
  start_ = last_ = o_.now();
}

Progress::~Progress() {
  std::lock_guard lock(mu_);
  if (drawn_ && !finished_) emit("\n");
}

std::string Progress::duration(std::chrono::seconds s) {
  const long t = std::max<long>(0, static_cast<long>(s.count()));
  if (t < 60) return fmt::format("{}s", t);
  if (t < 3600) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
}

std::string Progress::status(std::uint64_t done, Clock::time_point now, std::string_view note) const {
  const auto elapsed = std::chrono::duration_cast<std::chrono::seconds>(now - start_);
  const std::string count = counted(done);
  std::string s;
  if (o_.total) {
    const double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(o_.total));
    s = fmt::format("{} {:3.0f}%", count, frac * 100);
    if (done > 0 && done < o_.total) {
      const auto left = std::chrono::duration<double>(now - start_) * (static_cast<double>(o_.total - done) / static_cast<double>(done));
      s += " ETA " + duration(std::chrono::duration_cast<std::chrono::seconds>(left));
    }
  } else {
    s = count;
  }
  s += fmt::format(", {} elapsed", duration(elapsed));
  if (!note.empty()) s += fmt::format(": {}", note);
  return s;
}

std::string Progress::counted(std::uint64_t done) const {
  std::string count = o_.total ? fmt::format("{}/{}", done, o_.total) : fmt::format("{}", done);
  if (!o_.unit.empty()) count += " " + o_.unit;
  return count;
}

void Progress::emit(const std::string& text) { o_.write(text); }

void Progress::update(std::uint64_t done, std::string_view note) {
  std::lock_guard lock(mu_);
  done_ = done;
  if (o_.mode == Mode::quiet || finished_) return;
  const auto now = o_.now();
  if (o_.mode == Mode::lines) {
    if (now - last_ < o_.line_every) return;
    last_ = now;
    emit(o_.label + ": " + status(done, now, note) + "\n");
    return;
  }
  if (drawn_ && now - last_ < o_.redraw_every) return;
  last_ = now;
  // \r and erase-to-end: the bar replaces itself; cut to the terminal's width so it never wraps.
  std::string line = o_.label;
  if (o_.total) {
    constexpr int kBar = 24;
    const auto filled = static_cast<int>(kBar * std::min(1.0, static_cast<double>(done) / static_cast<double>(o_.total)));
    line += " [" + std::string(static_cast<std::size_t>(filled), '#') + std::string(static_cast<std::size_t>(kBar - filled), '.') + "]";
  }
  line += " " + status(done, now, note);
  if (line.size() > static_cast<std::size_t>(o_.width - 1)) line.resize(static_cast<std::size_t>(o_.width - 1));
  emit("\r\x1b[K" + line);
  drawn_ = true;
}

void Progress::finish(std::string_view note) {
  std::lock_guard lock(mu_);
  if (o_.mode == Mode::quiet || finished_) return;
  finished_ = true;
  const auto now = o_.now();
  const auto took = std::chrono::duration_cast<std::chrono::seconds>(now - start_);
  std::string line = o_.label + ": " + counted(done_) + " in " + duration(took);
  if (!note.empty()) line += fmt::format(": {}", note);
  emit((o_.mode == Mode::terminal && drawn_ ? "\r\x1b[K" : "") + line + "\n");
}

}  // namespace ward::cli
