// The runner (runner.h): each step in a bounded child, results through a pipe.
#include "fuse/conform/runner.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>

namespace ward::conform {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::vector<const Check*> all_checks() {
  std::vector<const Check*> v;
  for (auto table : {name_checks(), data_checks(), attr_checks(), dir_checks()})
    for (const Check& c : table) v.push_back(&c);
  return v;
}

bool matches(const std::string& pattern, const std::string& name) {
  if (pattern.find_first_of("*?[") != std::string::npos) return ::fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
  return name == pattern || name.starts_with(pattern + ".");
}

std::vector<const Check*> select(const std::vector<std::string>& only) {
  std::vector<const Check*> v;
  for (const Check* c : all_checks()) {
    bool in = only.empty();
    for (auto& p : only) in = in || matches(p, c->name);
    if (in) v.push_back(c);
  }
  return v;
}

namespace {

// What a bounded child said: its text, or why there is none.
struct Answer {
  bool answered = false;  // the child wrote its text and exited 0
  bool stuck = false;     // the child survived SIGKILL: abandoned
  std::string text;
  std::string why;  // when not answered
};

// Runs `fn` in a child in its own process group; its string comes back through a pipe. The
// deadline covers the whole of it; past it the group is killed.
Answer bounded(const std::function<std::string()>& fn, std::chrono::seconds limit) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return {.why = fmt::format("pipe: {}", errname(errno))};
  std::fflush(nullptr);  // the child must not write the parent's buffered output again
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(p[0]);
    ::close(p[1]);
    return {.why = fmt::format("fork: {}", errname(errno))};
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::close(p[0]);
    // A step stuck in the kernel outlives the suite (below); it must not hold the suite's
    // output open, or whoever reads that waits for it too.
    if (int null = ::open("/dev/null", O_RDWR); null >= 0) {
      for (int fd = 0; fd < 3; ++fd) ::dup2(null, fd);
      if (null > 2) ::close(null);
    }
    std::string s = fn();
    // Descriptors the step left open would keep files busy (and the pipe's reader waiting).
    if (p[1] > 3) ::close_range(3, static_cast<unsigned>(p[1]) - 1, 0);
    ::close_range(static_cast<unsigned>(p[1]) + 1, ~0u, 0);
    for (std::size_t off = 0; off < s.size();) {
      ssize_t n = ::write(p[1], s.data() + off, s.size() - off);
      if (n <= 0) ::_exit(1);
      off += static_cast<std::size_t>(n);
    }
    ::_exit(0);
  }
  ::setpgid(pid, pid);  // also here: no window in which a kill of the group misses the child
  ::close(p[1]);
  const auto end = Clock::now() + limit;
  Answer a;
  bool eof = false;
  char b[4096];
  while (!eof && Clock::now() < end) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
    pollfd pf{p[0], POLLIN, 0};
    int r = ::poll(&pf, 1, static_cast<int>(std::max<long long>(1, left)));
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    ssize_t n = ::read(p[0], b, sizeof b);
    if (n > 0)
      a.text.append(b, static_cast<std::size_t>(n));
    else if (n == 0 || errno != EINTR)
      eof = true;
  }
  ::close(p[0]);
  int st = 0;
  bool reaped = false;
  while (Clock::now() < end && !reaped) {
    reaped = ::waitpid(pid, &st, WNOHANG) == pid;
    if (!reaped) ::usleep(2'000);
  }
  if (!reaped) {
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    // SIGKILL ends a process whose FUSE request the FS has not read yet; one the FS has read
    // is waited for uninterruptibly by the kernel (fs/fuse/dev.c, request_wait_answer) until
    // the FS answers or the connection is aborted. Such a child is left behind rather than
    // hanging the suite.
    const auto grace = Clock::now() + 5s;
    while (Clock::now() < grace && !reaped) {
      reaped = ::waitpid(pid, &st, WNOHANG) == pid;
      if (!reaped) ::usleep(5'000);
    }
    a.stuck = !reaped;
    a.why = reaped ? fmt::format("no answer within {} s (killed)", limit.count())
                   : fmt::format("no answer within {} s, and the process {} survived SIGKILL (stuck in the kernel)",
                                 limit.count(), pid);
    return a;
  }
  if (WIFSIGNALED(st)) {
    a.why = fmt::format("died of signal {} ({})", WTERMSIG(st), ::sigabbrev_np(WTERMSIG(st)) ?: "?");
  } else if (WEXITSTATUS(st) != 0 || !eof) {
    a.why = fmt::format("exited {} without an answer", WEXITSTATUS(st));
  } else {
    a.answered = true;
  }
  return a;
}

// One line: control bytes (names with newlines) would break the one-line-per-check output.
std::string one_line(std::string s) {
  for (auto& ch : s)
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
  return s;
}

// `stuck` is set when the check's process could not be ended: the file system holds it.
Outcome run_one(const Check& check, const std::string& work, std::chrono::seconds limit, bool& stuck) {
  const Ctx ctx{work + "/" + check.name};
  Answer a = bounded(
      [&] {
        ::umask(022);
        if (::mkdir(ctx.dir.c_str(), 0777) != 0 || ::chmod(ctx.dir.c_str(), 0777) != 0)
          return fmt::format("Fmkdir {}: {}", ctx.dir, errname(errno));
        Outcome o = check.fn(ctx);
        if (::chdir("/") != 0) {
        }
        // Every check cleans up: a failure to, even after a pass, is the file system's.
        std::string left = remove_tree(ctx.dir);
        if (!left.empty() && o.verdict != Verdict::fail) o = failed("cleanup: {}", left);
        const char tag = o.verdict == Verdict::pass ? 'P' : o.verdict == Verdict::fail ? 'F' : 'S';
        return std::string(1, tag) + o.reason;
      },
      limit);
  stuck = a.stuck;
  if (!a.answered) {
    // The check never got to its cleanup: try once more from a fresh process, unless the file
    // system holds processes (the cleanup would be held too).
    if (!stuck) (void)bounded([&] { return remove_tree(ctx.dir); }, limit);
    return failed("{}", a.why);
  }
  if (a.text.empty()) return failed("empty answer");
  Outcome o{a.text[0] == 'P' ? Verdict::pass : a.text[0] == 'S' ? Verdict::skip : Verdict::fail, a.text.substr(1)};
  return o;
}

}  // namespace

Result<Tally> run(const Options& opts, const std::vector<const Check*>& checks, std::FILE* out) {
  const std::string work = opts.dir + "/.ward-fsconform-" + std::to_string(::getpid());
  Answer made = bounded(
      [&] {
        struct stat st;
        if (::stat(opts.dir.c_str(), &st) != 0) return fmt::format("{}: {}", opts.dir, errname(errno));
        if (!S_ISDIR(st.st_mode)) return fmt::format("{}: not a directory", opts.dir);
        if (::mkdir(work.c_str(), 0777) != 0 || ::chmod(work.c_str(), 0777) != 0)
          return fmt::format("cannot make {}: {}", work, errname(errno));
        return std::string();
      },
      opts.timeout);
  if (!made.answered) return fail(Errc::misuse, fmt::format("{}: {}", opts.dir, made.why));
  if (!made.text.empty()) return fail(Errc::misuse, made.text);

  Tally t;
  std::string stuck_at;  // the check whose process the file system holds: the rest cannot run
  for (const Check* c : checks) {
    bool stuck = false;
    Outcome o = stuck_at.empty()
                    ? run_one(*c, work, opts.timeout, stuck)
                    : failed("not run: the file system holds the process of {}, which it never answered", stuck_at);
    if (stuck) stuck_at = c->name;
    switch (o.verdict) {
      case Verdict::pass:
        ++t.passed;
        std::fprintf(out, "pass %s\n", c->name);
        break;
      case Verdict::fail:
        ++t.failed;
        std::fprintf(out, "FAIL %s: %s\n", c->name, one_line(o.reason).c_str());
        break;
      case Verdict::skip:
        ++t.skipped;
        std::fprintf(out, "skip %s: %s\n", c->name, one_line(o.reason).c_str());
        break;
    }
    std::fflush(out);
  }
  Answer gone;
  if (stuck_at.empty()) gone = bounded([&] { return remove_tree(work); }, opts.timeout);
  if (!stuck_at.empty()) {
    ++t.failed;
    std::fprintf(out, "FAIL cleanup: not tried, the file system holds a process\n");
  } else if (!gone.answered || !gone.text.empty()) {
    ++t.failed;
    std::fprintf(out, "FAIL cleanup: %s\n", one_line(gone.answered ? gone.text : gone.why).c_str());
  }
  std::fprintf(out, "%d passed, %d failed, %d skipped\n", t.passed, t.failed, t.skipped);
  std::fflush(out);
  return t;
}

}  // namespace ward::conform
