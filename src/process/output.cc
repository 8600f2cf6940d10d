#include "process/output.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "ward/process/doorbell.h"

namespace ward::detail {

namespace {

constexpr std::uint64_t kSecond = 1'000'000'000;
constexpr std::size_t kReadChunk = 64 << 10;
// Per readiness event, so one flooding domain cannot starve the others' pipes.
constexpr std::size_t kReadPerEvent = 4 * kReadChunk;
// After the child died: what is left in its pipes is at most their capacity, unless a process it
// forked still writes. Stop there rather than read for ever.
constexpr std::size_t kFinalDrain = 16 << 20;

int stream_index(OutputStream s) { return s == OutputStream::err ? 1 : 0; }

// Length of the valid UTF-8 sequence at s[i] (2..4 bytes), and its code point; 0 if invalid.
std::size_t utf8_sequence(std::string_view s, std::size_t i, char32_t& cp) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  std::size_t len = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    cp = c & 0x0f;
    if (c == 0xe0) lo = 0xa0;  // overlong
    if (c == 0xed) hi = 0x9f;  // surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    cp = c & 0x07;
    if (c == 0xf0) lo = 0x90;  // overlong
    if (c == 0xf4) hi = 0x8f;  // above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() - i < len) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const unsigned char lim_lo = k == 1 ? lo : 0x80, lim_hi = k == 1 ? hi : 0xbf;
    if (b(k) < lim_lo || b(k) > lim_hi) return 0;
    cp = (cp << 6) | (b(k) & 0x3f);
  }
  return len;
}

// Code points that steer a terminal or reorder what a reader sees.
bool steering(char32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) ||                   // C1 controls (0x9b is CSI)
         cp == 0x061c || cp == 0x200e || cp == 0x200f ||  // bidi marks
         (cp >= 0x2028 && cp <= 0x202e) ||                // line/paragraph separators, bidi embeddings
         (cp >= 0x2066 && cp <= 0x2069);                  // bidi isolates
}

void append_escaped_byte(std::string& out, unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += "\\x";
  out += kHex[c >> 4];
  out += kHex[c & 15];
}

}  // namespace

std::string escape_output(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size();) {
    const auto c = static_cast<unsigned char>(raw[i]);
    if ((c >= 0x20 && c < 0x7f) || c == '\t') {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    char32_t cp = 0;
    const std::size_t len = c >= 0x80 ? utf8_sequence(raw, i, cp) : 0;
    const std::size_t n = std::max<std::size_t>(len, 1);
    if (len != 0 && !steering(cp)) {
      out.append(raw.substr(i, len));
    } else {
      for (std::size_t k = 0; k < n; ++k) append_escaped_byte(out, static_cast<unsigned char>(raw[i + k]));
    }
    i += n;
  }
  return out;
}

// ---- OutputShaper ---------------------------------------------------------------------------------
OutputShaper::OutputShaper(const Policy& p, Emit emit)
    : emit_(std::move(emit)),
      discard_(p.output_sink() == OutputSink::discard),
      line_max_(p.output_line_max()),
      rate_(p.output_rate()),
      burst_(p.output_burst()),
      budget_(p.lifetime_output_budget()),
      // 0: no lifetime budget (the default), only the rate.
      budget_left_(p.lifetime_output_budget() != 0 ? p.lifetime_output_budget() : ~std::uint64_t{0}),
      tokens_(static_cast<double>(p.output_burst())) {}

void OutputShaper::feed(OutputStream s, std::string_view bytes, std::uint64_t now_ns) {
  if (discard_) return;
  std::string& part = partial_[stream_index(s)];
  while (!bytes.empty()) {
    if (exhausted_) {
      // Nothing more can be delivered: count the bytes, skip the line assembly.
      drop(part.size() + bytes.size(), kBudget, now_ns);
      part.clear();
      return;
    }
    const std::size_t room = line_max_ - part.size();  // > 0: a full piece is flushed at once
    // A newline right after a full piece still ends the line there (no split needed).
    const std::size_t scan = std::min(bytes.size(), room + 1);
    if (const void* nl = std::memchr(bytes.data(), '\n', scan)) {
      const auto n = static_cast<std::size_t>(static_cast<const char*>(nl) - bytes.data());
      part.append(bytes.data(), n);
      bytes.remove_prefix(n + 1);
      piece(s, part, true, false, now_ns);
      part.clear();
    } else if (bytes.size() >= room + 1) {
      part.append(bytes.data(), room);
      bytes.remove_prefix(room);
      piece(s, part, false, true, now_ns);
      part.clear();
    } else {
      part.append(bytes);
      return;
    }
  }
}

void OutputShaper::end_of_stream(OutputStream s, std::uint64_t now_ns) {
  std::string& part = partial_[stream_index(s)];
  if (!part.empty() && !discard_) {
    if (exhausted_)
      drop(part.size(), kBudget, now_ns);
    else
      piece(s, part, false, false, now_ns);
  }
  part.clear();
}

void OutputShaper::finish(std::uint64_t now_ns) {
  end_of_stream(OutputStream::out, now_ns);
  end_of_stream(OutputStream::err, now_ns);
  if (dropped_ != 0) summary(now_ns);
}

std::optional<std::uint64_t> OutputShaper::notice_due() const {
  if (dropped_ == 0) return std::nullopt;
  const std::uint64_t since = std::max(drop_since_ns_, noticed_once_ ? last_notice_ns_ : 0);
  return since + kSecond;
}

void OutputShaper::tick(std::uint64_t now_ns) {
  if (auto due = notice_due(); due && now_ns >= *due) summary(now_ns);
}

void OutputShaper::piece(OutputStream s, std::string_view text, bool newline, bool split, std::uint64_t now_ns) {
  const std::uint64_t cost = text.size() + (newline ? 1 : 0);
  if (cost > budget_left_) {
    // The first line that does not fit ends the (opt-in, lifetime) budget for the rest of this
    // instance's life.
    exhausted_ = true;
    (void)emit_(OutputStream::notice, "lifetime output budget of " + std::to_string(budget_) +
                                          " bytes exhausted; the rest of this instance's output is dropped");
    drop(cost, kBudget, now_ns);
    return;
  }
  if (rate_ != 0 && refilled_ns_ != 0 && now_ns > refilled_ns_)
    tokens_ = std::min(static_cast<double>(burst_),
                       tokens_ + static_cast<double>(now_ns - refilled_ns_) * static_cast<double>(rate_) / 1e9);
  refilled_ns_ = std::max(refilled_ns_, now_ns);
  if (static_cast<double>(cost) > tokens_) {
    drop(cost, kRate, now_ns);
    return;
  }
  // Output flows again: report what was lost before it, unless a notice went out within a second.
  if (dropped_ != 0 && (!noticed_once_ || now_ns - last_notice_ns_ >= kSecond)) summary(now_ns);
  std::string line = escape_output(text);
  if (split) line += kOutputSplitMarker;
  if (!emit_(s, std::move(line))) {
    drop(cost, kSlowSink, now_ns);
    return;
  }
  tokens_ -= static_cast<double>(cost);
  budget_left_ -= cost;
}

void OutputShaper::drop(std::uint64_t bytes, Reason why, std::uint64_t now_ns) {
  if (bytes == 0) return;
  if (dropped_ == 0) drop_since_ns_ = now_ns;
  dropped_ += bytes;
  reasons_ |= why;
}

void OutputShaper::summary(std::uint64_t now_ns) {
  std::string why;
  const auto add = [&](std::string s) { why += (why.empty() ? "" : "; ") + std::move(s); };
  if (reasons_ & kRate) add("over the rate limit of " + std::to_string(rate_) + " bytes/s");
  if (reasons_ & kBudget) add("lifetime output budget of " + std::to_string(budget_) + " bytes exhausted");
  if (reasons_ & kSlowSink) add("the sink is too slow");
  (void)emit_(OutputStream::notice, std::to_string(dropped_) + " bytes of output dropped (" + why + ")");
  dropped_ = 0;
  reasons_ = 0;
  last_notice_ns_ = now_ns;
  noticed_once_ = true;
}

// ---- pipes ----------------------------------------------------------------------------------------
Result<OutputPipes> OutputPipes::open() {
  OutputPipes p;
  for (int i = 0; i < 2; ++i) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return fail(Errc::load_failed, std::string("output pipe: ") + std::strerror(errno));
    // Above 9 (see the header); both ends close-on-exec, so no other child inherits them.
    p.read_[i] = fcntl(fds[0], F_DUPFD_CLOEXEC, 10);
    p.write_[i] = fcntl(fds[1], F_DUPFD_CLOEXEC, 10);
    ::close(fds[0]);
    ::close(fds[1]);
    if (p.read_[i] < 0 || p.write_[i] < 0)
      return fail(Errc::load_failed, std::string("output pipe: ") + std::strerror(errno));
    // The host's end only: the child's write end stays blocking, as stdio expects.
    if (fcntl(p.read_[i], F_SETFL, O_NONBLOCK) != 0)
      return fail(Errc::load_failed, std::string("output pipe: ") + std::strerror(errno));
  }
  return p;
}

OutputPipes::OutputPipes(OutputPipes&& o) noexcept {
  std::swap(read_, o.read_);
  std::swap(write_, o.write_);
}

OutputPipes::~OutputPipes() {
  for (int fd : {read_[0], read_[1], write_[0], write_[1]})
    if (fd >= 0) ::close(fd);
}

// ---- the pump and the delivery thread ---------------------------------------------------------------
namespace {

// Who a domain's lines are for; shared by its channel and its queued lines, which may outlive it.
struct Label {
  std::string name;
  OutputSink sink;
  std::shared_ptr<const OutputCallback> callback;
};

struct Queued {
  std::shared_ptr<const Label> label;
  OutputStream stream;
  std::string text;
};

struct Channel {
  std::shared_ptr<const Label> label;
  int fd[2] = {-1, -1};  // read ends: stdout, stderr
  int pidfd = -1;
  std::unique_ptr<OutputShaper> shaper;
  bool finished = false;
  ~Channel() {
    for (int f : {fd[0], fd[1], pidfd})
      if (f >= 0) ::close(f);
  }
};

// epoll data: the channel's address with the source in its low bits (Channel is 8-aligned).
constexpr std::uint64_t kTagMask = 3, kTagPid = 2;

class Pump {
 public:
  static Pump& get() {
    // Never destroyed: its threads run until the process ends, like the reaper's.
    static Pump* p = new Pump();
    return *p;
  }
  // Starts the threads on first use (again on the next call if that failed), then hands `ch` to
  // the pump thread and waits until it watches it.
  Result<void> attach(std::unique_ptr<Channel> ch);
  // Queues a line for the delivery thread; false (dropped) if the queue is full, notices aside.
  bool enqueue(const std::shared_ptr<const Label>& label, OutputStream s, std::string&& text);

 private:
  Pump() = default;
  [[nodiscard]] Result<void> start();
  void pump_loop();
  void deliver_loop();
  void adopt(std::unique_ptr<Channel> ch, Result<void>& out);
  // Reads stream `i` of `ch` until it would block, it ends, or `limit` bytes were read.
  void drain(Channel& ch, int i, std::size_t limit, std::uint64_t now);
  void close_stream(Channel& ch, int i, std::uint64_t now);
  void finish(Channel& ch, std::uint64_t now);

  std::mutex start_mu_;
  bool started_ = false;
  int ep_ = -1;    // set once by start(), before the threads exist
  int wake_ = -1;  // eventfd: a request is queued
  std::vector<std::unique_ptr<Channel>> channels_;  // pump thread only
  char buf_[kReadChunk];                             // pump thread only

  std::mutex req_mu_;
  std::deque<std::function<void()>> requests_;

  std::mutex q_mu_;
  std::condition_variable q_cv_;
  std::deque<Queued> queue_;
  std::uint64_t queued_bytes_ = 0;  // queued plus being delivered
};

Result<void> Pump::start() {
  std::lock_guard<std::mutex> g(start_mu_);
  if (started_) return {};
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  const int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.u64 = 0;
  if (ep < 0 || wake < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, wake, &e) != 0) {
    const std::string why = std::strerror(errno);
    for (int fd : {ep, wake})
      if (fd >= 0) ::close(fd);
    return fail(Errc::load_failed, "output pump: " + why);  // tried again with the next domain
  }
  ep_ = ep;
  wake_ = wake;
  // Threads inherit the creator's mask: block everything while creating them.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  std::thread([this] { pump_loop(); }).detach();
  std::thread([this] { deliver_loop(); }).detach();
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  started_ = true;
  return {};
}

Result<void> Pump::attach(std::unique_ptr<Channel> ch) {
  if (auto r = start(); !r) return r;
  // Channels are registered on the pump thread, which alone touches them afterwards.
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool done = false;
  Result<void> out{};
  {
    std::lock_guard<std::mutex> g(req_mu_);
    requests_.push_back([&, c = ch.release()] {
      Result<void> r{};
      adopt(std::unique_ptr<Channel>(c), r);
      std::lock_guard<std::mutex> g2(done_mu);
      out = std::move(r);
      done = true;
      done_cv.notify_one();
    });
  }
  // Cannot fail in a way that matters: a full eventfd counter is readable, so the pump wakes.
  const std::uint64_t one = 1;
  (void)!write(wake_, &one, sizeof one);
  std::unique_lock<std::mutex> g(done_mu);
  done_cv.wait(g, [&] { return done; });
  return out;
}

void Pump::adopt(std::unique_ptr<Channel> ch, Result<void>& out) {
  const auto base = reinterpret_cast<std::uint64_t>(ch.get());
  const int fds[3] = {ch->fd[0], ch->fd[1], ch->pidfd};
  for (std::uint64_t tag = 0; tag < 3; ++tag) {
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.u64 = base | tag;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, fds[tag], &e) != 0) {
      out = fail(Errc::load_failed, std::string("output pump: epoll_ctl: ") + std::strerror(errno));
      for (std::uint64_t k = 0; k < tag; ++k) epoll_ctl(ep_, EPOLL_CTL_DEL, fds[k], nullptr);
      return;  // the channel (and its descriptors) go; the caller kills the child
    }
  }
  channels_.push_back(std::move(ch));
}

bool Pump::enqueue(const std::shared_ptr<const Label>& label, OutputStream s, std::string&& text) {
  {
    std::lock_guard<std::mutex> g(q_mu_);
    if (s != OutputStream::notice && queued_bytes_ + text.size() > kOutputQueueBytes) return false;
    queued_bytes_ += text.size();
    queue_.push_back({label, s, std::move(text)});
  }
  q_cv_.notify_one();
  return true;
}

void Pump::close_stream(Channel& ch, int i, std::uint64_t now) {
  if (ch.fd[i] < 0) return;
  epoll_ctl(ep_, EPOLL_CTL_DEL, ch.fd[i], nullptr);
  ::close(ch.fd[i]);
  ch.fd[i] = -1;
  ch.shaper->end_of_stream(i == 0 ? OutputStream::out : OutputStream::err, now);
}

void Pump::drain(Channel& ch, int i, std::size_t limit, std::uint64_t now) {
  const OutputStream s = i == 0 ? OutputStream::out : OutputStream::err;
  for (std::size_t total = 0; ch.fd[i] >= 0 && total < limit;) {
    const ssize_t n = read(ch.fd[i], buf_, sizeof buf_);
    if (n > 0) {
      ch.shaper->feed(s, std::string_view(buf_, static_cast<std::size_t>(n)), now);
      total += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      return;
    } else {
      close_stream(ch, i, now);  // end of stream (or an error nothing more can be read after)
    }
  }
}

void Pump::finish(Channel& ch, std::uint64_t now) {
  for (int i = 0; i < 2; ++i) {
    drain(ch, i, kFinalDrain, now);
    close_stream(ch, i, now);
  }
  ch.shaper->finish(now);
  epoll_ctl(ep_, EPOLL_CTL_DEL, ch.pidfd, nullptr);
  ch.finished = true;
}

void Pump::pump_loop() {
  epoll_event events[64];
  for (;;) {
    // Sleep until output arrives, or until a notice about dropped output falls due.
    int timeout_ms = -1;
    const std::uint64_t before = wire::mono_ns();
    for (const auto& ch : channels_)
      if (auto due = ch->shaper->notice_due()) {
        const std::uint64_t wait = *due > before ? (*due - before) / 1'000'000 + 1 : 0;
        const auto ms = static_cast<int>(std::min<std::uint64_t>(wait, 60'000));
        timeout_ms = timeout_ms < 0 ? ms : std::min(timeout_ms, ms);
      }
    const int n = epoll_wait(ep_, events, 64, timeout_ms);
    const std::uint64_t now = wire::mono_ns();
    for (int k = 0; k < n; ++k) {
      const std::uint64_t data = events[k].data.u64;
      if (data == 0) {
        std::uint64_t v;
        (void)!read(wake_, &v, sizeof v);
        std::deque<std::function<void()>> q;
        {
          std::lock_guard<std::mutex> g(req_mu_);
          q.swap(requests_);
        }
        for (auto& r : q) r();
        continue;
      }
      auto* ch = reinterpret_cast<Channel*>(data & ~kTagMask);
      // A channel finished earlier in this batch is still allocated (freed below): skip it.
      if (ch->finished) continue;
      if ((data & kTagMask) == kTagPid)
        finish(*ch, now);
      else
        drain(*ch, static_cast<int>(data & kTagMask), kReadPerEvent, now);
    }
    for (const auto& ch : channels_) ch->shaper->tick(now);
    std::erase_if(channels_, [](const std::unique_ptr<Channel>& ch) { return ch->finished; });
  }
}

// Writes all of `text` to the host's stderr; gives up on an error (a closed pipe, a full
// non-blocking descriptor): those lines are lost, the host is not.
void write_host_stderr(std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(2, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  text.clear();
}

void Pump::deliver_loop() {
  std::string pending;  // host-stderr lines of this batch, written together
  for (;;) {
    std::deque<Queued> batch;
    {
      std::unique_lock<std::mutex> g(q_mu_);
      q_cv_.wait(g, [&] { return !queue_.empty(); });
      batch.swap(queue_);
    }
    std::uint64_t bytes = 0;
    for (auto& item : batch) {
      bytes += item.text.size();
      const Label& l = *item.label;
      if (l.sink == OutputSink::host_stderr) {
        pending += '[';
        pending += escape_output(l.name);
        pending += ' ';
        pending += to_string(item.stream);
        pending += "] ";
        pending += item.text;
        pending += '\n';
        continue;
      }
      if (l.sink != OutputSink::callback || !l.callback) continue;
      write_host_stderr(pending);  // keep the order of lines across sinks
      try {
        (*l.callback)(l.name, item.stream, item.text);
      } catch (...) {
        // The host's callback failed on one line; the thread must go on delivering the rest.
      }
    }
    write_host_stderr(pending);
    std::lock_guard<std::mutex> g(q_mu_);
    queued_bytes_ -= bytes;
  }
}

}  // namespace

Result<void> attach_output(OutputPipes pipes, std::string name, const Policy& policy, int pidfd) {
  // The child has its copies; the host's must go, or the pipes would never reach their end.
  for (int& fd : pipes.write_) {
    ::close(fd);
    fd = -1;
  }
  auto ch = std::make_unique<Channel>();
  ch->pidfd = fcntl(pidfd, F_DUPFD_CLOEXEC, 10);
  if (ch->pidfd < 0) return fail(Errc::load_failed, std::string("output: dup pidfd: ") + std::strerror(errno));
  for (int i = 0; i < 2; ++i) std::swap(ch->fd[i], pipes.read_[i]);
  auto label = std::make_shared<const Label>(Label{std::move(name), policy.output_sink(), policy.output_callback()});
  ch->label = label;
  Pump& pump = Pump::get();
  ch->shaper = std::make_unique<OutputShaper>(
      policy, [&pump, label](OutputStream s, std::string&& text) { return pump.enqueue(label, s, std::move(text)); });
  return pump.attach(std::move(ch));
}

}  // namespace ward::detail
