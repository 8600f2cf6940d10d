#include "fuse/fs_output.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

namespace ward::fuse::detail {

namespace {

// The length of the UTF-8 sequence `lead` starts (2..4), or 0 when it starts none.
int sequence_length(unsigned char lead) {
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

// The code point of a whole sequence `s` (its length from sequence_length), or -1 when it is not
// well-formed: a byte that does not continue it, an overlong form, a surrogate, past U+10FFFF.
long decode(std::string_view s) {
  auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  long cp = b(0) & (0x7f >> s.size());
  for (std::size_t i = 1; i < s.size(); ++i) {
    if ((b(i) & 0xc0) != 0x80) return -1;
    cp = (cp << 6) | (b(i) & 0x3f);
  }
  static constexpr long kLeast[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kLeast[s.size()] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return -1;
  return cp;
}

bool shown_as_is(long cp) {
  return !(cp <= 0x9f) && !(cp >= 0x202a && cp <= 0x202e) && !(cp >= 0x2066 && cp <= 0x2069);
}

void write_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // a full disk, a closed pipe: this text is lost, as a log line would be
    done += static_cast<std::size_t>(n);
  }
}

constexpr std::size_t kChunk = 64 << 10;

constexpr const char* kLevels[] = {"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"};

// "Mmm dd hh:mm:ss " (RFC 3164's timestamp; the day space-padded).
bool stamp_at(std::string_view s) {
  if (s.size() < 16) return false;
  auto digit = [&](std::size_t i) { return s[i] >= '0' && s[i] <= '9'; };
  auto letter = [&](std::size_t i) { return (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z'); };
  return letter(0) && letter(1) && letter(2) && s[3] == ' ' && (s[4] == ' ' || digit(4)) && digit(5) &&
         s[6] == ' ' && digit(7) && digit(8) && s[9] == ':' && digit(10) && digit(11) && s[12] == ':' &&
         digit(13) && digit(14) && s[15] == ' ';
}

}  // namespace

std::string syslog_text(std::string_view d) {
  std::string level;
  if (d.size() >= 3 && d[0] == '<') {
    std::size_t end = d.find('>');
    unsigned pri = 0;
    bool ok = end != std::string_view::npos && end >= 2 && end <= 4;  // 0..191
    for (std::size_t i = 1; ok && i < end; ++i) {
      ok = d[i] >= '0' && d[i] <= '9';
      pri = pri * 10 + static_cast<unsigned>(d[i] - '0');
    }
    if (ok && pri <= 191) {
      level = std::string(kLevels[pri & 7]) + ": ";
      d.remove_prefix(end + 1);
    }
  }
  if (stamp_at(d)) d.remove_prefix(16);
  while (!d.empty() && (d.back() == '\n' || d.back() == '\0')) d.remove_suffix(1);
  return "syslog " + (level.empty() ? std::string("?: ") : level) + std::string(d);
}

void OutputText::start_line(std::string& out) {
  if (line_open_) return;
  out += prefix_;
  line_open_ = true;
}

void OutputText::escape(std::string_view bytes, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  start_line(out);
  for (unsigned char c : bytes) {
    out += "\\x";
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
}

void OutputText::put(unsigned char c, std::string& out) {
  if (c == '\n') {
    if (!line_open_) out += prefix_;  // an empty line is still a line of the file system's
    out += '\n';
    line_open_ = false;
  } else if (c == '\t' || (c >= 0x20 && c < 0x7f)) {
    start_line(out);
    out += static_cast<char>(c);
  } else {
    escape(std::string_view(reinterpret_cast<const char*>(&c), 1), out);
  }
}

void OutputText::feed(std::string_view chunk, std::string& out) {
  std::string joined;
  if (!held_.empty()) {
    joined = std::move(held_) + std::string(chunk);
    held_.clear();
    chunk = joined;
  }
  std::size_t i = 0;
  while (i < chunk.size()) {
    const auto c = static_cast<unsigned char>(chunk[i]);
    const int len = c < 0x80 ? 1 : sequence_length(c);
    if (len <= 1) {
      put(c, out);
      ++i;
      continue;
    }
    if (chunk.size() - i < static_cast<std::size_t>(len)) {
      // Cut here, unless what is there already cannot become a sequence.
      bool may_continue = true;
      for (std::size_t k = i + 1; k < chunk.size(); ++k)
        may_continue &= (static_cast<unsigned char>(chunk[k]) & 0xc0) == 0x80;
      if (may_continue) {
        held_.assign(chunk.substr(i));
        return;
      }
      put(c, out);
      ++i;
      continue;
    }
    const std::string_view seq = chunk.substr(i, static_cast<std::size_t>(len));
    const long cp = decode(seq);
    if (cp < 0) {  // the lead byte alone is bad; what follows is judged on its own
      put(c, out);
      ++i;
      continue;
    }
    if (shown_as_is(cp)) {
      start_line(out);
      out += seq;
    } else {
      escape(seq, out);
    }
    i += static_cast<std::size_t>(len);
  }
}

void OutputText::finish(std::string& out) {
  if (!held_.empty()) escape(std::exchange(held_, {}), out);
  if (line_open_) {
    out += '\n';
    line_open_ = false;
  }
}

struct FsOutput::State {
  UniqueFd read_end, write_end, wake, syslog;
  std::atomic<bool> stopping{false};
  std::mutex m;
  UniqueFd next_syslog;  // under m: the socket new_syslog() made, for the thread to take
  int out = -1;  // the host's, by number: not owned
  std::string prefix;
  OutputText text;
  explicit State(std::string p) : prefix(p), text(std::move(p)) {}

  void wake_up() {
    const std::uint64_t one = 1;
    (void)!::write(wake.get(), &one, sizeof one);
  }

  // Forwards the datagrams the socket holds now, one line each; at most kRound of them, so that
  // a file system that keeps the queue full cannot keep the thread from its pipe and its stop.
  void drain_syslog(std::vector<char>& buf) {
    constexpr int kRound = 64;
    for (int i = 0; syslog.valid() && i < kRound; ++i) {
      ssize_t n = ::recv(syslog.get(), buf.data(), buf.size(), MSG_TRUNC | MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return;
      const bool cut = static_cast<std::size_t>(n) > buf.size();
      std::string line = syslog_text(std::string_view(buf.data(), std::min(buf.size(), static_cast<std::size_t>(n))));
      if (cut) line += " [cut at " + std::to_string(buf.size()) + " bytes]";
      OutputText one(prefix);
      std::string shown;
      one.feed(line, shown);
      one.finish(shown);
      write_all(out, shown);
    }
  }

  // Forwards what the pipe holds now; false once it reports end of file or an error.
  bool drain(std::vector<char>& buf) {
    for (;;) {
      ssize_t n = ::read(read_end.get(), buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return true;
      if (n <= 0) return false;
      std::string shown;
      text.feed(std::string_view(buf.data(), static_cast<std::size_t>(n)), shown);
      write_all(out, shown);
    }
  }

  void run() {
    std::vector<char> buf(kChunk);
    for (;;) {
      pollfd p[3] = {{read_end.get(), POLLIN, 0}, {wake.get(), POLLIN, 0}, {syslog.get(), POLLIN, 0}};
      if (::poll(p, syslog.valid() ? 3 : 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (p[1].revents != 0) {
        std::uint64_t n;
        (void)!::read(wake.get(), &n, sizeof n);
        UniqueFd next;
        {
          std::lock_guard lock(m);  // not held while writing: new_syslog() must not wait on `out`
          next = std::move(next_syslog);
        }
        if (next.valid()) {  // the last instance is gone: what it sent is forwarded first
          drain_syslog(buf);
          syslog = std::move(next);
        }
      }
      drain_syslog(buf);
      if (!drain(buf) || stopping) break;
    }
    std::string rest;
    text.finish(rest);
    write_all(out, rest);
  }
};

FsOutput::FsOutput() = default;
FsOutput::FsOutput(FsOutput&&) noexcept = default;
FsOutput::~FsOutput() { stop(); }

FsOutput& FsOutput::operator=(FsOutput&& o) noexcept {
  stop();
  state_ = std::move(o.state_);
  thread_ = std::move(o.thread_);
  return *this;
}

Result<FsOutput> FsOutput::start(int out, std::string prefix) {
  FsOutput o;
  o.state_ = std::make_unique<State>(std::move(prefix));
  State& s = *o.state_;
  s.out = out;
  if (out < 0) {
    s.write_end = UniqueFd(::open("/dev/null", O_WRONLY | O_CLOEXEC));
    if (!s.write_end.valid()) return fail(Errc::load_failed, errno_text("open /dev/null", errno));
    return o;
  }
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return fail(Errc::load_failed, errno_text("pipe2", errno));
  s.read_end = UniqueFd(p[0]);
  s.write_end = UniqueFd(p[1]);
  // Only ward's end reads without blocking: the file system's writes block while the pipe is full,
  // as a write to a slow terminal does.
  if (::fcntl(s.read_end.get(), F_SETFL, O_NONBLOCK) != 0) return fail(Errc::load_failed, errno_text("fcntl", errno));
  s.wake = UniqueFd(::eventfd(0, EFD_CLOEXEC));
  if (!s.wake.valid()) return fail(Errc::load_failed, errno_text("eventfd", errno));
  // The thread starts with every signal blocked: it inherits the mask of the moment.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  o.thread_ = std::thread([state = o.state_.get()] { state->run(); });
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return o;
}

int FsOutput::write_end() const { return state_ ? state_->write_end.get() : -1; }

UniqueFd FsOutput::new_syslog() {
  if (!thread_.joinable()) return {};
  UniqueFd mine(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!mine.valid()) return {};
  UniqueFd theirs(::fcntl(mine.get(), F_DUPFD_CLOEXEC, 0));
  if (!theirs.valid()) return {};
  {
    std::lock_guard lock(state_->m);
    state_->next_syslog = std::move(mine);
  }
  state_->wake_up();
  return theirs;
}

void FsOutput::stop() {
  if (thread_.joinable()) {
    state_->stopping = true;
    state_->wake_up();
    thread_.join();
  }
  state_.reset();
}

}  // namespace ward::fuse::detail
