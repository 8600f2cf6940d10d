#include "fuse/fs_output.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/unique_fd.h"

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

}  // namespace

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
  UniqueFd read_end, write_end, wake;
  int out = -1;  // the host's, by number: not owned
  OutputText text;
  explicit State(std::string prefix) : text(std::move(prefix)) {}

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
      pollfd p[2] = {{read_end.get(), POLLIN, 0}, {wake.get(), POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      const bool stopping = p[1].revents != 0;
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

void FsOutput::stop() {
  if (thread_.joinable()) {
    const std::uint64_t one = 1;
    (void)!::write(state_->wake.get(), &one, sizeof one);
    thread_.join();
  }
  state_.reset();
}

}  // namespace ward::fuse::detail
