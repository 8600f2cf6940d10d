// The output channel (issue 8, finding 5): an extension's stdout and stderr are pipes the host
// drains, never the host's own descriptors. Each test makes the host's fds 1 and 2 something an
// attacker would love (a log file, a terminal) while the domain starts, so on the old code the
// child inherited them; and each collects the extension's output through a callback sink, since
// the test binary's own stdout/stderr are shared by every test.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "process/output.h"
#include "interfaces.h"

namespace {

using namespace std::chrono_literals;
using ward::OutputStream;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kMiB = 1ull << 20;

std::string hostile(const char* name) { return std::string(WARD_PLUGIN_DIR) + "/hostile/lib" + name + ".so"; }
std::string plugin(const char* name) { return std::string(WARD_PLUGIN_DIR) + "/lib" + name + ".so"; }

struct Line {
  std::string name;
  OutputStream stream;
  std::string text;
};

// What a callback sink received; shared with the callback, which may outlive the test's scope.
struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Line> lines;

  static ward::OutputCallback callback_for(const std::shared_ptr<Collector>& c) {
    return [c](std::string_view name, OutputStream s, std::string_view text) {
      std::lock_guard<std::mutex> g(c->mu);
      c->lines.push_back({std::string(name), s, std::string(text)});
      c->cv.notify_all();
    };
  }
  // Waits (up to a generous bound: delivery is asynchronous) until `done(lines)` holds.
  bool wait(const std::function<bool(const std::vector<Line>&)>& done, std::chrono::seconds bound = 10s) {
    std::unique_lock<std::mutex> g(mu);
    return cv.wait_for(g, bound, [&] { return done(lines); });
  }
  std::vector<Line> snapshot() {
    std::lock_guard<std::mutex> g(mu);
    return lines;
  }
};

std::vector<std::string> texts(const std::vector<Line>& lines, OutputStream s) {
  std::vector<std::string> out;
  for (const auto& l : lines)
    if (l.stream == s) out.push_back(l.text);
  return out;
}

bool has_text(const std::vector<Line>& lines, OutputStream s, std::string_view text) {
  for (const auto& l : lines)
    if (l.stream == s && l.text == text) return true;
  return false;
}

// Accounting of a flood of complete lines: bytes delivered (newlines included) and bytes the
// notices say were dropped. Together they must be every byte the extension wrote.
struct Tally {
  std::uint64_t delivered = 0;
  std::uint64_t dropped = 0;
  std::size_t notices = 0;
};
Tally tally(const std::vector<Line>& lines) {
  Tally t;
  for (const auto& l : lines) {
    if (l.stream == OutputStream::out) t.delivered += l.text.size() + 1;
    if (l.stream != OutputStream::notice) continue;
    ++t.notices;
    if (l.text.find(" bytes of output dropped") != std::string::npos) t.dropped += std::strtoull(l.text.c_str(), nullptr, 10);
  }
  return t;
}

// A temporary file, removed at the end of the test.
struct TempFile {
  std::string path;
  int fd = -1;
  TempFile() {
    char p[] = "/tmp/ward-output-test-XXXXXX";
    fd = mkstemp(p);
    path = p;
  }
  ~TempFile() {
    if (fd >= 0) ::close(fd);
    ::unlink(path.c_str());
  }
  std::string contents() const {
    std::string s;
    char buf[4096];
    for (off_t off = 0;;) {
      const ssize_t n = pread(fd, buf, sizeof buf, off);
      if (n <= 0) break;
      s.append(buf, static_cast<std::size_t>(n));
      off += n;
    }
    return s;
  }
  off_t size() const {
    struct stat sb {};
    return fstat(fd, &sb) == 0 ? sb.st_size : -1;
  }
};

// Points the host's own fds 1 and 2 at `fd` until restore() (or the end of the scope). Children
// spawned meanwhile would inherit them if ward let them; nothing may be asserted inside the
// scope (gtest would print its failure into `fd`).
class HostStdio {
 public:
  explicit HostStdio(int fd) {
    std::fflush(stdout);
    std::fflush(stderr);
    saved_[0] = dup(1);
    saved_[1] = dup(2);
    dup2(fd, 1);
    dup2(fd, 2);
  }
  void restore() {
    if (saved_[0] < 0) return;
    std::fflush(stdout);
    std::fflush(stderr);
    dup2(saved_[0], 1);
    dup2(saved_[1], 2);
    ::close(saved_[0]);
    ::close(saved_[1]);
    saved_[0] = saved_[1] = -1;
  }
  ~HostStdio() { restore(); }
  HostStdio(const HostStdio&) = delete;
  HostStdio& operator=(const HostStdio&) = delete;

 private:
  int saved_[2] = {-1, -1};
};

ward::Policy::Builder base() {
  auto b = ward::Policy::builder();
  b.timeout(10s).memory(256 * kMiB);
  return b;
}

ward::Policy with_collector(ward::Policy::Builder b, const std::shared_ptr<Collector>& c) {
  auto p = b.output_to_callback(Collector::callback_for(c)).build();
  EXPECT_TRUE(p) << (p ? "" : p.error().message());
  return p ? *p : ward::Policy();
}

// Loads a probe plugin; the error (if any) is reported by the caller outside HostStdio scopes.
ward::Result<ward::Instance<probe_api>> load(const std::string& path, const ward::Policy& pol, std::string name = {}) {
  return ward::Instance<probe_api>::load(path, "probe_entry", pol, std::move(name));
}

// Loads with the host's fds 1 and 2 pointing at `fd` (see HostStdio): on the old code, the child
// kept them; and a flood that escapes ends up in a file, not in the test log.
ward::Result<ward::Instance<probe_api>> load_with_host_stdio(int fd, const std::string& path, const ward::Policy& pol,
                                                           std::string name = {}) {
  HostStdio redirect(fd);
  return load(path, pol, std::move(name));
}

long value(const ward::Result<ward::Tainted<long>>& r) { return r ? r->unverified_value_i_trust_it() : -999; }

// ---- the hostile plugins of finding 5 ------------------------------------------------------------

TEST(Output, ExtensionCannotRewindAndOverwriteTheHostsLog) {
  TempFile log;
  ASSERT_GE(log.fd, 0);
  const std::string original = "host: started\nhost: loaded the plugin\n";
  ASSERT_EQ(write(log.fd, original.data(), original.size()), static_cast<ssize_t>(original.size()));
  auto c = std::make_shared<Collector>();
  // The host runs as `host > host.log 2>&1`.
  std::optional<ward::Result<ward::Instance<probe_api>>> p{load_with_host_stdio(log.fd, hostile("out_lseek"), with_collector(base(), c))};
  ASSERT_TRUE(*p) << (*p).error().message();
  auto r = (**p).call<&probe_api::run>(1L);
  // Either the rewind failed (a pipe cannot seek) or the filter stopped it as a violation.
  if (r) {
    EXPECT_EQ(value(r), 0) << "the extension rewound descriptors it writes to";
  } else {
    EXPECT_EQ(r.error().kind, ward::Errc::violation) << r.error().message();
  }
  p.reset();
  EXPECT_EQ(log.contents(), original);
}

TEST(Output, ExtensionCannotReadWhatTheUserTypes) {
  // The host's stdout and stderr are a terminal, opened read-write as terminals are.
  const int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(master, 0) << std::strerror(errno);
  ASSERT_EQ(grantpt(master), 0);
  ASSERT_EQ(unlockpt(master), 0);
  const int tty = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(tty, 0) << std::strerror(errno);
  struct Closer {
    int a, b;
    ~Closer() {
      ::close(a);
      ::close(b);
    }
  } closer{master, tty};
  auto c = std::make_shared<Collector>();
  std::optional<ward::Result<ward::Instance<probe_api>>> p{load_with_host_stdio(tty, hostile("out_read"), with_collector(base(), c))};
  ASSERT_TRUE(*p) << (*p).error().message();
  const std::string secret = "hunter2\n";  // the user types a password at the host's prompt
  ASSERT_EQ(write(master, secret.data(), secret.size()), static_cast<ssize_t>(secret.size()));
  auto r = (**p).call<&probe_api::run>(1L);
  if (r) {
    EXPECT_EQ(value(r), 0) << "the extension read from the host's terminal";
    unsigned char stolen[64] = {};
    auto n = (**p).call<&probe_api::poke>(stolen, sizeof stolen);
    ASSERT_TRUE(n) << n.error().message();
    EXPECT_EQ(value(n), 0) << std::string(reinterpret_cast<char*>(stolen), sizeof stolen);
  } else {
    EXPECT_EQ(r.error().kind, ward::Errc::violation) << r.error().message();
  }
  p.reset();
  // The typed line is still there for the host.
  ASSERT_EQ(fcntl(tty, F_SETFL, O_NONBLOCK), 0);
  char buf[64];
  const ssize_t n = read(tty, buf, sizeof buf);
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0), secret);
}

TEST(Output, FloodIsCappedByTheLifetimeBudgetAndTheHostStaysResponsive) {
  TempFile host_out;
  auto c = std::make_shared<Collector>();
  const auto pol = with_collector(base().lifetime_output_budget(kMiB).output_rate(1ull << 30, 1ull << 30), c);
  const auto t0 = Clock::now();
  std::optional<ward::Result<ward::Instance<probe_api>>> flood{load_with_host_stdio(host_out.fd, hostile("out_flood"), pol)};
  std::optional<ward::Result<ward::Instance<probe_api>>> other{load_with_host_stdio(host_out.fd, plugin("probe_ok"), pol)};
  ASSERT_TRUE(*flood) << (*flood).error().message();
  ASSERT_TRUE(*other) << (*other).error().message();
  std::atomic<bool> done{false};
  ward::Result<ward::Tainted<long>> flood_result = std::unexpected(ward::Error{});
  {
    std::jthread writer([&] {
      flood_result = (**flood).call<&probe_api::run>(64L);
      done = true;
    });
    // Another extension keeps answering promptly while the flood is drained.
    auto worst = Clock::duration::zero();
    int calls = 0;
    while (!done || calls == 0) {
      const auto s = Clock::now();
      auto r = (**other).call<&probe_api::run>(0L);
      worst = std::max(worst, Clock::now() - s);
      ASSERT_TRUE(r) << r.error().message();
      ++calls;
      std::this_thread::sleep_for(1ms);
    }
    EXPECT_LT(worst, 2s);
  }
  ASSERT_TRUE(flood_result) << flood_result.error().message();  // not a false `hung`
  EXPECT_EQ(value(flood_result), static_cast<long>(64 * kMiB));
  flood.reset();  // the child dies; the rest of its output is drained and accounted for
  const bool accounted = c->wait([](const std::vector<Line>& ls) {
    const Tally t = tally(ls);
    return t.delivered + t.dropped >= 64 * kMiB;
  });
  const auto elapsed_s = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - t0).count();
  const auto lines = c->snapshot();
  const Tally t = tally(lines);
  EXPECT_TRUE(accounted) << "delivered " << t.delivered << ", reported dropped " << t.dropped;
  EXPECT_EQ(t.delivered + t.dropped, 64 * kMiB);
  EXPECT_LE(t.delivered, kMiB);
  EXPECT_GT(t.delivered, kMiB / 2);  // the budget is used, not wasted
  // "Say so once": one notice when the budget runs out, then at most one a second.
  EXPECT_LE(t.notices, static_cast<std::size_t>(3 + elapsed_s)) << t.notices;
  EXPECT_EQ(host_out.size(), 0) << "the extension wrote into the host's stdout";
}

TEST(Output, FloodIsCappedByTheRate) {
  auto c = std::make_shared<Collector>();
  constexpr std::uint64_t kRate = 256 << 10, kBurst = 512 << 10;
  const auto pol = with_collector(base().output_rate(kRate, kBurst), c);
  const auto t0 = Clock::now();
  TempFile host_out;
  auto p = load_with_host_stdio(host_out.fd, hostile("out_flood"), pol);
  ASSERT_TRUE(p) << p.error().message();
  auto r = p->call<&probe_api::run>(16L);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(value(r), static_cast<long>(16 * kMiB));
  { auto gone = std::move(*p); }
  const bool accounted = c->wait([](const std::vector<Line>& ls) {
    const Tally t = tally(ls);
    return t.delivered + t.dropped >= 16 * kMiB;
  });
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  const Tally t = tally(c->snapshot());
  EXPECT_TRUE(accounted) << "delivered " << t.delivered << ", reported dropped " << t.dropped;
  EXPECT_EQ(t.delivered + t.dropped, 16 * kMiB);
  EXPECT_LE(static_cast<double>(t.delivered), kBurst + kRate * elapsed) << elapsed << " s";
  EXPECT_GE(t.delivered, kBurst / 2);
}

TEST(Output, LinesArriveLabelledAndInOrder) {
  TempFile host_out;
  auto c = std::make_shared<Collector>();
  std::optional<ward::Result<ward::Instance<probe_api>>> p{load_with_host_stdio(host_out.fd, hostile("out_lines"), with_collector(base(), c))};
  ASSERT_TRUE(*p) << (*p).error().message();
  ASSERT_EQ(value((**p).call<&probe_api::run>(1L)), 1);
  ASSERT_EQ(value((**p).call<&probe_api::run>(2L)), 1);
  EXPECT_TRUE(c->wait([](const auto& ls) { return has_text(ls, OutputStream::out, "open ended") &&
                                                   has_text(ls, OutputStream::err, "err 99"); }));
  p.reset();
  const auto lines = c->snapshot();
  std::vector<std::string> want_out, want_err;
  for (int i = 0; i < 100; ++i) {
    want_out.push_back("out " + std::to_string(i));
    want_err.push_back("err " + std::to_string(i));
  }
  want_out.insert(want_out.end(), {"partial", "open ended"});
  EXPECT_EQ(texts(lines, OutputStream::out), want_out);
  EXPECT_EQ(texts(lines, OutputStream::err), want_err);
  EXPECT_TRUE(texts(lines, OutputStream::notice).empty());
  for (const auto& l : lines) EXPECT_EQ(l.name, "libout_lines.so");
  EXPECT_EQ(host_out.size(), 0);
}

TEST(Output, ControlSequencesAreEscapedAndLongLinesSplit) {
  auto c = std::make_shared<Collector>();
  TempFile host_out;
  auto p = load_with_host_stdio(host_out.fd, hostile("out_lines"), with_collector(base().output_line_max(1000), c), "lines");
  ASSERT_TRUE(p) << p.error().message();
  ASSERT_EQ(value(p->call<&probe_api::run>(3L)), 1);
  { auto gone = std::move(*p); }
  ASSERT_TRUE(c->wait([](const auto& ls) { return texts(ls, OutputStream::out).size() >= 11; }));
  const auto out = texts(c->snapshot(), OutputStream::out);
  ASSERT_EQ(out.size(), 11u);
  // No byte that a terminal would act on survives: ESC, CR, the C1 CSI, the bidi override.
  EXPECT_EQ(out[0], "\\x1b[2J\\x0dforged\\xc2\\x9b31m\\xe2\\x80\\xaetxt.exe");
  std::string joined;
  for (std::size_t i = 1; i < out.size(); ++i) {
    std::string piece = out[i];
    if (i + 1 < out.size()) {
      ASSERT_TRUE(piece.ends_with(ward::kOutputSplitMarker)) << piece;
      piece.resize(piece.size() - ward::kOutputSplitMarker.size());
    }
    EXPECT_LE(piece.size(), 1000u);
    joined += piece;
  }
  std::string want;
  for (int i = 0; i < 10000; ++i) want += static_cast<char>('a' + i % 26);
  EXPECT_EQ(joined, want);
}

TEST(Output, PartialLinesBeforeACrashAreDelivered) {
  auto c = std::make_shared<Collector>();
  TempFile host_out;
  std::optional<ward::Result<ward::Instance<probe_api>>> p{load_with_host_stdio(host_out.fd, hostile("out_crash"), with_collector(base(), c))};
  ASSERT_TRUE(*p) << (*p).error().message();
  auto r = (**p).call<&probe_api::run>(1L);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::crashed) << r.error().message();
  EXPECT_TRUE(c->wait([](const auto& ls) {
    return has_text(ls, OutputStream::out, "last words") && has_text(ls, OutputStream::err, "dying");
  }));
  p.reset();
}

TEST(Output, StderrSinkLabelsLinesAndDiscardSinkDiscards) {
  TempFile host_err;
  bool discard_ok = false, marker_ok = false, marker_seen = false;
  {
    HostStdio redirect(host_err.fd);  // no assertions in this scope
    auto quiet = load(hostile("out_lines"), *base().discard_output().build());
    auto flood = load(hostile("out_flood"), *base().discard_output().build());
    discard_ok = quiet && flood && value(quiet->call<&probe_api::run>(1L)) == 1 &&
                 value(flood->call<&probe_api::run>(8L)) == static_cast<long>(8 * kMiB);
    // A later domain printing to the default sink: once its line is on the host's stderr, the
    // discarded lines (drained earlier) would have been too.
    auto loud = load(hostile("out_crash"), *base().build(), "loud\x1b[31m");
    marker_ok = loud && !loud->call<&probe_api::run>(1L);
    for (auto deadline = Clock::now() + 10s; Clock::now() < deadline && !marker_seen;) {
      marker_seen = host_err.contents().find("dying") != std::string::npos;
      std::this_thread::sleep_for(10ms);
    }
  }
  EXPECT_TRUE(discard_ok);
  EXPECT_TRUE(marker_ok);
  EXPECT_TRUE(marker_seen);
  const std::string got = host_err.contents();
  EXPECT_NE(got.find("[loud\\x1b[31m stdout] last words\n"), std::string::npos) << got;
  EXPECT_NE(got.find("[loud\\x1b[31m stderr] dying\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("out 1"), std::string::npos) << got;
  EXPECT_EQ(got.find("xxxx"), std::string::npos) << got.substr(0, 200);
}

TEST(Output, BlockedSinkDoesNotStallTheExtension) {
  // A callback that blocks until the test lets it go: the extension must not wait for it.
  struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
    void release() {
      std::lock_guard<std::mutex> g(mu);
      open = true;
      cv.notify_all();
    }
  };
  auto gate = std::make_shared<Gate>();
  struct Releaser {
    std::shared_ptr<Gate> g;
    ~Releaser() { g->release(); }
  } releaser{gate};
  auto c = std::make_shared<Collector>();
  auto inner = Collector::callback_for(c);
  // The flood is 8 MiB (8x the sink queue, so lines must be dropped) under a generous timeout:
  // a stalled extension would still end `hung` after 20 s, while a loaded or sanitized run of the
  // pump, which takes seconds for 32 MiB under TSan, stays far inside it.
  auto pol = base().timeout(20s).output_rate(1ull << 30, 1ull << 30)
                 .output_to_callback([gate, inner](std::string_view n, OutputStream s, std::string_view t) {
                   {
                     std::unique_lock<std::mutex> g(gate->mu);
                     gate->cv.wait(g, [&] { return gate->open; });
                   }
                   inner(n, s, t);
                 })
                 .build();
  ASSERT_TRUE(pol);
  TempFile host_out;
  auto p = load_with_host_stdio(host_out.fd, hostile("out_flood"), *pol);
  ASSERT_TRUE(p) << p.error().message();
  auto r = p->call<&probe_api::run>(8L);
  ASSERT_TRUE(r) << r.error().message();  // not `hung` behind a sink that never returns
  EXPECT_EQ(value(r), static_cast<long>(8 * kMiB));
  { auto gone = std::move(*p); }
  gate->release();
  EXPECT_TRUE(c->wait([](const auto& ls) {
    const Tally t = tally(ls);
    return t.delivered + t.dropped >= 8 * kMiB;
  }));
  const auto lines = c->snapshot();
  const Tally t = tally(lines);
  EXPECT_EQ(t.delivered + t.dropped, 8 * kMiB);
  EXPECT_GT(t.dropped, 0u);
  bool slow_reported = false;
  for (const auto& l : lines) slow_reported |= l.stream == OutputStream::notice && l.text.find("sink") != std::string::npos;
  EXPECT_TRUE(slow_reported);
}

TEST(Output, ExtensionIsNotInTheHostsSession) {
  // Outside the host's session the child has no controlling terminal: even with file access,
  // open("/dev/tty") cannot hand it the user's terminal.
  auto pol = base().unsafe_allow_file_open().unsafe_allow_syscall("getsid").discard_output().build();
  ASSERT_TRUE(pol);
  auto p = load(hostile("out_session"), *pol);
  ASSERT_TRUE(p) << p.error().message();
  auto sid = p->call<&probe_api::run>(1L);
  ASSERT_TRUE(sid) << sid.error().message();
  EXPECT_NE(value(sid), static_cast<long>(getsid(0)));
  EXPECT_EQ(value(sid), static_cast<long>(ward::pid_of(p->domain())));
  auto tty = p->call<&probe_api::run>(2L);
  ASSERT_TRUE(tty) << tty.error().message();
  EXPECT_LT(value(tty), 0);
}

// ---- RLIMIT_FSIZE --------------------------------------------------------------------------------

TEST(Output, FilesCannotGrowUnlessThePolicySaysHowFar) {
  const std::string path = "/tmp/ward-fsize-" + std::to_string(getpid());
  struct Unlink {
    std::string p;
    ~Unlink() { ::unlink(p.c_str()); }
  } cleanup{path};
  ::unlink(path.c_str());  // a leftover of an earlier run with this pid
  auto size_of = [&] {
    struct stat sb {};
    return ::stat(path.c_str(), &sb) == 0 ? sb.st_size : -1;
  };
  {
    auto pol = base().unsafe_allow_file_open().discard_output().build();
    ASSERT_TRUE(pol);
    auto p = load(hostile("out_fsize"), *pol);
    ASSERT_TRUE(p) << p.error().message();
    auto r = p->call<&probe_api::run>(1L);
    ASSERT_FALSE(r) << value(r) << " bytes written";
    EXPECT_EQ(r.error().signal, SIGXFSZ) << r.error().message();
    EXPECT_EQ(r.error().kind, ward::Errc::limit) << r.error().message();
    EXPECT_EQ(size_of(), 0);
  }
  ::unlink(path.c_str());  // the plugin creates it exclusively
  {
    auto pol = base().unsafe_allow_file_open().max_file_size(100000).discard_output().build();
    ASSERT_TRUE(pol);
    auto p = load(hostile("out_fsize"), *pol);
    ASSERT_TRUE(p) << p.error().message();
    auto r = p->call<&probe_api::run>(1L);
    ASSERT_FALSE(r) << value(r) << " bytes written";
    EXPECT_EQ(r.error().signal, SIGXFSZ) << r.error().message();
    EXPECT_EQ(size_of(), 100000);
  }
}

// ---- the shaper alone: escaping, splitting, the bucket, with a clock the test controls ----------

TEST(OutputShaper, EscapesWhatATerminalWouldActOnAndKeepsText) {
  using ward::detail::escape_output;
  EXPECT_EQ(escape_output("plain\ttext, h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80"),
            "plain\ttext, h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80");
  EXPECT_EQ(escape_output(std::string("a\0b\x7f\x1b]0;title\x07", 14)), "a\\x00b\\x7f\\x1b]0;title\\x07");
  EXPECT_EQ(escape_output("\xc0\xaf"), "\\xc0\\xaf");              // overlong '/'
  EXPECT_EQ(escape_output("\xed\xa0\x80"), "\\xed\\xa0\\x80");      // a surrogate
  EXPECT_EQ(escape_output("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
  EXPECT_EQ(escape_output("\xe2\x82"), "\\xe2\\x82");                // cut short
  EXPECT_EQ(escape_output("\xe2\x80\xa8"), "\\xe2\\x80\\xa8");      // U+2028 line separator
  EXPECT_EQ(escape_output("\xe2\x81\xa6"), "\\xe2\\x81\\xa6");      // U+2066 bidi isolate
}

struct ShaperRig {
  std::vector<std::pair<OutputStream, std::string>> got;
  bool accept = true;
  std::unique_ptr<ward::detail::OutputShaper> shaper;
  explicit ShaperRig(ward::Policy::Builder b) {
    auto p = b.build();
    EXPECT_TRUE(p) << (p ? "" : p.error().message());
    shaper = std::make_unique<ward::detail::OutputShaper>(*p, [this](OutputStream s, std::string&& t) {
      if (s != OutputStream::notice && !accept) return false;
      got.emplace_back(s, std::move(t));
      return true;
    });
  }
};
constexpr std::uint64_t kSec = 1'000'000'000;

TEST(OutputShaper, SplitsOnlyLinesLongerThanTheMaximum) {
  ShaperRig rig(ward::Policy::builder().output_line_max(64));
  const std::string exact(64, 'e'), over(65, 'o');
  rig.shaper->feed(OutputStream::out, exact + "\n" + over + "\n", kSec);
  // A newline arriving alone right after a full piece still ends that line.
  rig.shaper->feed(OutputStream::err, exact, kSec);
  rig.shaper->feed(OutputStream::err, "\n", kSec);
  ASSERT_EQ(rig.got.size(), 4u);
  EXPECT_EQ(rig.got[0].second, exact);
  EXPECT_EQ(rig.got[1].second, std::string(64, 'o') + std::string(ward::kOutputSplitMarker));
  EXPECT_EQ(rig.got[2].second, "o");
  EXPECT_EQ(rig.got[3], std::make_pair(OutputStream::err, exact));
}

TEST(OutputShaper, TokenBucketDropsWholeLinesAndReportsOnceASecond) {
  ShaperRig rig(ward::Policy::builder().output_line_max(64).output_rate(100, 200));
  const std::string line(50, 'l');
  for (int i = 0; i < 10; ++i) rig.shaper->feed(OutputStream::out, line + "\n", kSec);
  ASSERT_EQ(rig.got.size(), 3u);  // 3 x 51 bytes fit the burst of 200, the 4th does not
  ASSERT_TRUE(rig.shaper->notice_due());
  EXPECT_EQ(*rig.shaper->notice_due(), 2 * kSec);
  rig.shaper->tick(kSec + kSec / 2);
  EXPECT_EQ(rig.got.size(), 3u);
  rig.shaper->tick(2 * kSec);
  ASSERT_EQ(rig.got.size(), 4u);
  EXPECT_EQ(rig.got[3].first, OutputStream::notice);
  EXPECT_EQ(rig.got[3].second, "357 bytes of output dropped (over the rate limit of 100 bytes/s)");
  // A second later the bucket holds 47 + 100 bytes: two more lines.
  for (int i = 0; i < 3; ++i) rig.shaper->feed(OutputStream::out, line + "\n", 2 * kSec);
  std::size_t lines = 0;
  for (const auto& g : rig.got) lines += g.first == OutputStream::out;
  EXPECT_EQ(lines, 5u);
  rig.shaper->finish(2 * kSec);
  EXPECT_EQ(rig.got.back().second, "51 bytes of output dropped (over the rate limit of 100 bytes/s)");
}

TEST(OutputShaper, RefusedLinesAreCountedAsASlowSink) {
  ShaperRig rig(ward::Policy::builder());
  rig.accept = false;
  rig.shaper->feed(OutputStream::out, "one\ntwo\n", kSec);
  rig.accept = true;
  rig.shaper->feed(OutputStream::err, "three\nfour", kSec);
  rig.shaper->finish(kSec);
  // Before "two" the drop of "one" is reported (nothing was reported yet); "two" is refused too,
  // and that is reported at the end, not before "three": one notice a second at most.
  const std::vector<std::pair<OutputStream, std::string>> want{
      {OutputStream::notice, "4 bytes of output dropped (the sink is too slow)"},
      {OutputStream::err, "three"},
      {OutputStream::err, "four"},
      {OutputStream::notice, "4 bytes of output dropped (the sink is too slow)"}};
  EXPECT_EQ(rig.got, want);
}

// ---- the policy's output options -----------------------------------------------------------------

TEST(OutputPolicy, DefaultsAreStderrWithDocumentedCaps) {
  const ward::Policy p;
  EXPECT_EQ(p.output_sink(), ward::OutputSink::host_stderr);
  EXPECT_EQ(p.lifetime_output_budget(), 0u);  // off: a lifetime total silences healthy long-lived extensions
  EXPECT_EQ(p.output_rate(), 64u << 10);
  EXPECT_EQ(p.output_burst(), 256u << 10);
  EXPECT_EQ(p.output_line_max(), 4096u);
  EXPECT_EQ(p.max_file_size(), 0u);
  EXPECT_NE(p.describe().find("output to stderr"), std::string::npos) << p.describe();
}

TEST(OutputPolicy, RejectsSettingsThatCannotWork) {
  EXPECT_EQ(ward::Policy::builder().output_to_callback(nullptr).build().error().kind, ward::Errc::misuse);
  EXPECT_EQ(ward::Policy::builder().max_file_size(1).build().error().kind, ward::Errc::misuse);
  EXPECT_EQ(ward::Policy::builder().output_line_max(10).build().error().kind, ward::Errc::misuse);
  EXPECT_EQ(ward::Policy::builder().output_rate(0, 1 << 20).build().error().kind, ward::Errc::misuse);
  EXPECT_EQ(ward::Policy::builder().output_rate(1 << 20, 4096).build().error().kind, ward::Errc::misuse);
  EXPECT_TRUE(ward::Policy::builder().unsafe_allow_file_open().max_file_size(1).build());
}

TEST(OutputPolicy, CopiesShareTheCallback) {
  int calls = 0;
  auto p = ward::Policy::builder().output_to_callback([&](std::string_view, OutputStream, std::string_view) { ++calls; }).build();
  ASSERT_TRUE(p);
  const ward::Policy copy = *p;
  ASSERT_TRUE(copy.output_callback());
  (*copy.output_callback())("x", OutputStream::out, "y");
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(copy.output_callback(), p->output_callback());
  auto discard = ward::Policy::builder().output_to_callback([](auto, auto, auto) {}).discard_output().build();
  ASSERT_TRUE(discard);
  EXPECT_EQ(discard->output_sink(), ward::OutputSink::discard);
  EXPECT_FALSE(discard->output_callback());
}

}  // namespace
