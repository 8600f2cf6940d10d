#include "process/reaper.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <time.h>

#include <cerrno>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <thread>
#include <utility>

#include "process/output.h"
#include "process/seccomp.h"
#include "ward/process/doorbell.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace ward::detail {

Error DomainState::record(Error e) {
  std::lock_guard<std::mutex> g(mu);
  if (!cause) {
    cause = std::move(e);
    failed.store(true, std::memory_order_release);
  }
  return *cause;
}

void DomainState::kill_child() const {
  if (pidfd >= 0 && !reaped.load(std::memory_order_acquire))
    syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
}

bool DomainState::wait_reaped(int timeout_ms) {
  std::unique_lock<std::mutex> g(mu);
  return cv.wait_for(g, std::chrono::milliseconds(timeout_ms), [&] { return reaped.load(); });
}

// What the host observed decides the kind: death by SIGSYS (a filter trap: the extension can
// neither send SIGSYS nor handle it) is a violation, another signal a crash, an exit code an exit
// (the helper's own codes name their cause). The child's fault record is written by the child,
// so it only ever qualifies that: which system call or service, how large an allocation failed.
Error DomainState::classify_exit() const {
  const auto* ctl = reinterpret_cast<const wire::Control*>(base);
  Error e;
  if (!exit_known) {
    e.kind = Errc::crashed;
    e.detail = "the extension's process ended, but its exit status was taken by another waiter";
    return e;
  }
  const int code = exit_info.si_code;
  const int status = exit_info.si_status;
  if (code == CLD_KILLED || code == CLD_DUMPED) {
    e.signal = status;
    const char* sig = sigabbrev_np(status);
    const std::string signame = sig ? std::string("SIG") + sig : "signal " + std::to_string(status);
    const std::uint64_t alloc_failed = ctl->fault.alloc_failed.load(std::memory_order_acquire);
    if (status == SIGSYS) {
      e.kind = Errc::violation;
      const std::uint32_t claim = ctl->fault.violation.load(std::memory_order_acquire);
      if (claim == wire::kViolationUngranted) {
        const std::uint32_t t = ctl->fault.ungranted_table, f = ctl->fault.ungranted_fn;
        const std::string name = t < service_names.size() && f < service_names[t].size()
                                     ? service_names[t][f]
                                     : "table " + std::to_string(t) + " function " + std::to_string(f);
        e.detail = "called host service " + name + ", which this domain was not granted";
      } else if (claim == wire::kViolationSyscall) {
        e.syscall = ctl->fault.syscall_nr;
        e.detail = "forbidden system call " + syscall_name(e.syscall);
      } else {
        e.detail = "forbidden system call (killed by SIGSYS)";
      }
    } else if (status == SIGXCPU) {
      e.kind = Errc::limit;
      e.detail = "lifetime CPU limit (Policy lifetime_cpu_seconds) exhausted (SIGXCPU)";
    } else if (status == SIGXFSZ) {
      e.kind = Errc::limit;
      e.detail = "file size limit exhausted (SIGXFSZ)";
    } else if (alloc_failed != 0) {
      e.kind = Errc::limit;
      e.detail = "memory limit exhausted: an allocation of " + std::to_string(alloc_failed) +
                 " bytes failed, then the extension was killed by " + signame;
    } else {
      e.kind = Errc::crashed;
      e.detail = "killed by " + signame;
    }
    return e;
  }
  e.exit_status = status;
  if (status == wire::kHelperExitBadSetup && !loaded.load(std::memory_order_acquire) && !child_text().empty()) {
    // The helper writes why it gave up before exiting; the reap may be seen before its message.
    e.kind = Errc::load_failed;
    e.detail = child_text();
  } else if (status == wire::kHelperExitArena) {
    e.kind = Errc::limit;
    e.detail = "arena exhausted by the extension's arguments to a host service";
  } else if (status == wire::kHelperExitProtocol) {
    e.kind = Errc::violation;
    e.detail = "the extension broke the channel protocol";
  } else {
    e.kind = Errc::exited;
    e.detail = "the extension exited with status " + std::to_string(status);
  }
  return e;
}

std::string DomainState::child_text() const {
  const auto& txt = reinterpret_cast<const wire::Control*>(base)->fault.text;
  // The child wrote it: bounded, copied once, and escaped before it reaches any host log.
  char copy[sizeof txt];
  std::memcpy(copy, txt, sizeof copy);
  return escape_output(std::string_view(copy, strnlen(copy, sizeof copy)));
}

DomainState::~DomainState() {
  if (pidfd >= 0) ::close(pidfd);
  if (base) munmap(base, size);
}

struct Reaper::RateWatch {
  std::shared_ptr<DomainState> st;
  clockid_t clock;                // the child's process CPU clock
  std::uint64_t window_start = 0;  // monotonic ns
  std::uint64_t cpu_start = 0;     // the child's CPU ns then
};

struct Reaper::GrowthWatch {
  std::shared_ptr<DomainState> st;
  int statm = -1;                  // the child's /proc/PID/statm, opened at spawn; owned
  std::uint64_t window_start = 0;  // monotonic ns
  std::uint64_t rss_start = 0;     // bytes; meaningful once `judged`
  bool judged = false;             // false until the child has loaded: windows before do not count
  GrowthWatch(std::shared_ptr<DomainState> s, int fd, std::uint64_t now) : st(std::move(s)), statm(fd), window_start(now) {}
  GrowthWatch(GrowthWatch&& o) noexcept
      : st(std::move(o.st)), statm(std::exchange(o.statm, -1)), window_start(o.window_start), rss_start(o.rss_start),
        judged(o.judged) {}
  GrowthWatch& operator=(GrowthWatch&&) = delete;
  ~GrowthWatch() {
    if (statm >= 0) ::close(statm);
  }
};

struct Reaper::Impl {
  int ep = -1;
  int ev = -1;
  std::mutex mu;
  struct Request {
    std::function<void()> run;
  };
  std::deque<Request> queue;
  std::map<int, std::shared_ptr<DomainState>> watched;  // by pidfd; reaper thread only
  std::map<int, RateWatch> rates;                        // by pidfd, a subset of watched
  std::map<int, GrowthWatch> growth;                     // by pidfd, a subset of watched
};

namespace {
bool read_clock(clockid_t c, std::uint64_t& ns) {
  timespec ts{};
  if (clock_gettime(c, &ts) != 0) return false;
  ns = static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
  return true;
}
}  // namespace

bool Reaper::check_rate(RateWatch& w, std::uint64_t /*now_ns*/) {
  // Each CPU reading sits between two monotonic readings, and a window runs from the one before
  // its first CPU reading to the one after its last: the CPU time measured was spent inside the
  // real time measured, however long this thread was preempted between the reads. So a child
  // with one thread cannot exceed 1 core by more than the clocks disagree. They do disagree:
  // a one-thread child spinning at 100% measured 203 ms of CPU in 200 ms of CLOCK_MONOTONIC, run
  // after run (limits_test.cc). So the rate allows 5% and 5 ms more: a child over its share by
  // a whole thread (what the rate is for) is still far past that.
  const std::uint64_t before = wire::mono_ns();
  std::uint64_t cpu = 0;
  if (!read_clock(w.clock, cpu)) return false;
  const std::uint64_t after = wire::mono_ns();
  const DomainState& st = *w.st;
  const std::uint64_t elapsed = after > w.window_start ? after - w.window_start : 0;
  const std::uint64_t used = cpu > w.cpu_start ? cpu - w.cpu_start : 0;
  const double allowed = st.cpu_rate_cores * static_cast<double>(elapsed) * 1.05 + 5e6;
  if (static_cast<double>(used) > allowed) {
    Error e;
    e.kind = Errc::limit;
    e.detail = "CPU rate exceeded: used " + std::to_string(used / 1'000'000) + " ms of CPU in " +
               std::to_string(elapsed / 1'000'000) + " ms (policy cpu_rate: " + std::to_string(st.cpu_rate_cores) +
               " cores over " + std::to_string(st.cpu_rate_window_ns / 1'000'000) + " ms); the extension was killed";
    (void)w.st->record(std::move(e));
    w.st->kill_child();
    return false;
  }
  w.window_start = before;
  w.cpu_start = cpu;
  return true;
}

bool Reaper::check_growth(GrowthWatch& w, std::uint64_t now_ns) {
  // statm: size resident shared text lib data dt, in pages.
  char buf[256];
  const ssize_t n = ::pread(w.statm, buf, sizeof buf - 1, 0);
  if (n <= 0) return false;
  buf[n] = '\0';
  unsigned long long size = 0, resident = 0;
  if (std::sscanf(buf, "%llu %llu", &size, &resident) != 2) return false;
  const std::uint64_t rss = resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const DomainState& st = *w.st;
  if (w.judged && rss > w.rss_start && rss - w.rss_start > st.growth_bytes) {
    Error e;
    e.kind = Errc::limit;
    e.detail = "memory growth rate exceeded: resident memory grew by " + std::to_string((rss - w.rss_start) >> 20) +
               " MiB (to " + std::to_string(rss >> 20) + " MiB) in " +
               std::to_string((now_ns - w.window_start) / 1'000'000) + " ms (policy memory_growth: " +
               std::to_string(st.growth_bytes >> 20) + " MiB over " + std::to_string(st.growth_window_ns / 1'000'000) +
               " ms); the extension was killed";
    (void)w.st->record(std::move(e));
    w.st->kill_child();
    return false;
  }
  w.judged = w.st->loaded.load();
  w.window_start = now_ns;
  w.rss_start = rss;
  return true;
}

Reaper& Reaper::get() {
  // Never destroyed: the thread runs until the process ends (children die with it).
  static Reaper* r = new Reaper();
  return *r;
}

Reaper::Reaper() : impl_(new Impl) {
  impl_->ep = epoll_create1(EPOLL_CLOEXEC);
  impl_->ev = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.fd = impl_->ev;
  epoll_ctl(impl_->ep, EPOLL_CTL_ADD, impl_->ev, &e);
  std::thread([this] { loop(); }).detach();
}

Result<void> Reaper::spawn(const std::shared_ptr<DomainState>& st, std::function<Result<pid_t>()> fn) {
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool done = false;
  Result<void> out{};
  {
    std::lock_guard<std::mutex> g(impl_->mu);
    impl_->queue.push_back({[&, st] {
      Result<void> r{};
      if (auto pid = fn(); !pid) {
        r = std::unexpected(pid.error());
      } else {
        st->pid = *pid;
        st->pidfd = static_cast<int>(syscall(SYS_pidfd_open, *pid, 0));
        if (st->pidfd < 0) {
          // Cannot watch it: do not leave it running unwatched.
          ::kill(*pid, SIGKILL);
          siginfo_t si;
          waitid(P_PID, static_cast<id_t>(*pid), &si, WEXITED);
          r = fail(Errc::load_failed, std::string("pidfd_open: ") + std::strerror(errno));
        } else {
          epoll_event e{};
          e.events = EPOLLIN;
          e.data.fd = st->pidfd;
          epoll_ctl(impl_->ep, EPOLL_CTL_ADD, st->pidfd, &e);
          impl_->watched[st->pidfd] = st;
          clockid_t clock{};
          std::uint64_t cpu = 0;
          // The window starts before the CPU clock is read (see check_rate).
          const std::uint64_t start = wire::mono_ns();
          if (st->cpu_rate_cores > 0 && clock_getcpuclockid(*pid, &clock) == 0 && read_clock(clock, cpu))
            impl_->rates[st->pidfd] = RateWatch{st, clock, start, cpu};
          if (st->growth_bytes > 0) {
            // Opened now, while the pid cannot be anyone else's: only this thread reaps it.
            const int statm = ::open(("/proc/" + std::to_string(*pid) + "/statm").c_str(), O_RDONLY | O_CLOEXEC);
            if (statm >= 0) {
              impl_->growth.emplace(st->pidfd, GrowthWatch(st, statm, start));
            } else {  // the policy cannot be kept: the child does not run unwatched
              Error e;
              e.kind = Errc::load_failed;
              e.detail = "policy memory_growth: cannot read the child's memory use (/proc/" + std::to_string(*pid) +
                         "/statm: " + std::strerror(errno) + ")";
              (void)st->record(std::move(e));
              st->kill_child();
            }
          }
        }
      }
      std::lock_guard<std::mutex> g2(done_mu);
      out = std::move(r);
      done = true;
      done_cv.notify_one();
    }});
  }
  const std::uint64_t one = 1;
  if (write(impl_->ev, &one, sizeof one) < 0) return fail(Errc::load_failed, "reaper: eventfd write failed");
  std::unique_lock<std::mutex> g(done_mu);
  done_cv.wait(g, [&] { return done; });
  return out;
}

// A child whose pidfd says "exited" but which waitid cannot collect yet has a tracer that
// received its exit first. The reaper must never block on it (it serves every domain): such
// children are polled until the tracer lets go.
void Reaper::loop() {
  epoll_event events[32];
  std::map<int, std::shared_ptr<DomainState>> held;  // exited, exit status held by a tracer
  for (;;) {
    // Sleep until the next exit, spawn request, rate or growth window's end, or held child's poll.
    int timeout_ms = held.empty() ? -1 : 100;
    if (!impl_->rates.empty() || !impl_->growth.empty()) {
      const std::uint64_t now = wire::mono_ns();
      std::uint64_t next = ~0ull;
      for (const auto& [fd, w] : impl_->rates) next = std::min(next, w.window_start + w.st->cpu_rate_window_ns);
      for (const auto& [fd, w] : impl_->growth) next = std::min(next, w.window_start + w.st->growth_window_ns);
      const auto wait = static_cast<int>(std::min<std::uint64_t>(next > now ? (next - now + 999'999) / 1'000'000 : 0, 60'000));
      timeout_ms = timeout_ms < 0 ? wait : std::min(timeout_ms, wait);
    }
    const int n = epoll_wait(impl_->ep, events, 32, timeout_ms);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == impl_->ev) {
        std::uint64_t v;
        (void)!read(impl_->ev, &v, sizeof v);
        std::deque<Impl::Request> q;
        {
          std::lock_guard<std::mutex> g(impl_->mu);
          q.swap(impl_->queue);
        }
        for (auto& r : q) r.run();
        continue;
      }
      auto it = impl_->watched.find(fd);
      if (it == impl_->watched.end()) continue;
      std::shared_ptr<DomainState> st = it->second;
      impl_->watched.erase(it);
      impl_->rates.erase(fd);
      impl_->growth.erase(fd);
      epoll_ctl(impl_->ep, EPOLL_CTL_DEL, fd, nullptr);
      if (!try_reap(st)) {
        // Dead but not ours to collect yet: fail the domain now (calls must not wait for the
        // tracer), and keep polling for the exit status.
        Error e;
        e.kind = Errc::crashed;
        e.detail = "the extension's process ended while a tracer held it";
        (void)st->record(std::move(e));
        ring_host(*st);
        held[fd] = std::move(st);
      }
    }
    // A child that failed a check is killed; its exit is reaped like any other.
    const std::uint64_t now = wire::mono_ns();
    auto sweep = [now](auto& watches, std::uint64_t DomainState::*window, auto check) {
      for (auto it = watches.begin(); it != watches.end();) {
        if (now >= it->second.window_start + (*it->second.st).*window && !check(it->second, now)) it = watches.erase(it);
        else ++it;
      }
    };
    sweep(impl_->rates, &DomainState::cpu_rate_window_ns, &Reaper::check_rate);
    sweep(impl_->growth, &DomainState::growth_window_ns, &Reaper::check_growth);
    for (auto it = held.begin(); it != held.end();) {
      if (try_reap(it->second)) it = held.erase(it);
      else ++it;
    }
  }
}

bool Reaper::try_reap(const std::shared_ptr<DomainState>& st) {
  siginfo_t si{};
  const int rc = waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(st->pidfd), &si, WEXITED | WNOHANG);
  if (rc == 0 && si.si_pid == 0) return false;  // not collectable yet
  const bool known = rc == 0;
  {
    std::lock_guard<std::mutex> g(st->mu);
    st->exit_info = si;
    st->exit_known = known;
  }
  (void)st->record(st->classify_exit());
  {
    std::lock_guard<std::mutex> g(st->mu);
    st->reaped.store(true, std::memory_order_release);
  }
  ring_host(*st);
  st->cv.notify_all();
  return true;
}

// Wakes a host thread waiting for a reply: the doorbell word changes, it looks, sees the failure.
void Reaper::ring_host(DomainState& st) {
  auto* ctl = reinterpret_cast<wire::Control*>(st.base);
  ctl->to_host.seq.fetch_add(1, std::memory_order_seq_cst);
  wire::futex_wake(&ctl->to_host.seq, INT32_MAX);
}

}  // namespace ward::detail
