#include "floors.h"

#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include <benchmark/benchmark.h>

namespace ward::bench {
namespace {

std::string sys_error(const char* what) {
  const int e = errno;
  return std::string(what) + ": " + std::strerror(e);
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// ---- CPU masks ----------------------------------------------------------------------------------
// A mask is a run of cpu_set_t, grown until the kernel accepts it (machines with > 1024 CPUs).

using Mask = std::vector<cpu_set_t>;

std::size_t mask_bytes(const Mask& m) { return m.size() * sizeof(cpu_set_t); }

// The calling thread's affinity mask; empty (errno set) on failure.
Mask current_mask() {
  for (std::size_t sets = 1; sets <= 256; sets *= 2) {
    Mask m(sets);
    if (sched_getaffinity(0, mask_bytes(m), m.data()) == 0) return m;
    if (errno != EINVAL) break;
  }
  return {};
}

Mask single_cpu_mask(int cpu) {
  const std::size_t c = static_cast<std::size_t>(cpu);
  Mask m(c / (8 * sizeof(cpu_set_t)) + 1);
  CPU_SET_S(c, mask_bytes(m), m.data());
  return m;
}

bool pin_self(const Mask& m) { return sched_setaffinity(0, mask_bytes(m), m.data()) == 0; }

// Restores the calling thread's affinity mask when it goes out of scope.
class AffinityGuard {
 public:
  AffinityGuard() : saved_(current_mask()) {}
  ~AffinityGuard() {
    if (!saved_.empty()) pin_self(saved_);
  }
  AffinityGuard(const AffinityGuard&) = delete;
  AffinityGuard& operator=(const AffinityGuard&) = delete;
  bool ok() const { return !saved_.empty(); }

 private:
  Mask saved_;
};

// ---- shared page and futexes --------------------------------------------------------------------

using Word = std::atomic<std::uint32_t>;
static_assert(sizeof(Word) == sizeof(std::uint32_t) && Word::is_always_lock_free,
              "futex words must be plain 32-bit atomics");

// 128: keeps the words apart also from the adjacent-line prefetcher.
constexpr std::size_t kLine = 128;

// The page shared by parent and child. Every word has its own cache line.
struct Shared {
  alignas(kLine) Word ping{0};   // parent -> child: sequence number of the last request
  alignas(kLine) Word pong{0};   // child -> parent: sequence number of the last reply
  alignas(kLine) Word stop{0};   // parent -> child: exit now
  alignas(kLine) Word ready{0};  // child -> parent: kReadyOk / kReadyFailed after pinning
  alignas(kLine) Word dead{0};   // watchdog -> parent: the child has exited
};
constexpr std::uint32_t kReadyOk = 1;
constexpr std::uint32_t kReadyFailed = 2;

// Shared (not FUTEX_PRIVATE_FLAG) futex operations: the words live in a MAP_SHARED mapping that
// two processes use.
void futex_wait(Word* word, std::uint32_t expected) {
  syscall(SYS_futex, static_cast<void*>(word), FUTEX_WAIT, static_cast<long>(expected), nullptr,
          nullptr, 0L);
}

void futex_wake(Word* word, int count = 1) {
  syscall(SYS_futex, static_cast<void*>(word), FUTEX_WAKE, static_cast<long>(count), nullptr,
          nullptr, 0L);
}

// Changes a word and wakes every waiter on it (used to break a parent out of a wait).
void poke(Word* word) {
  word->fetch_add(1, std::memory_order_release);
  futex_wake(word, INT_MAX);
}

class SharedPage {
 public:
  SharedPage()
      : mem_(mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
                  0)) {
    if (mem_ != MAP_FAILED) shared_ = new (mem_) Shared;
  }
  ~SharedPage() {
    if (mem_ != MAP_FAILED) munmap(mem_, sizeof(Shared));  // Shared is trivially destructible
  }
  SharedPage(const SharedPage&) = delete;
  SharedPage& operator=(const SharedPage&) = delete;
  Shared* get() const { return shared_; }

 private:
  void* mem_;
  Shared* shared_ = nullptr;
};

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// ---- the child process --------------------------------------------------------------------------

std::string describe_status(int status) {
  if (WIFEXITED(status)) {
    if (WEXITSTATUS(status) == 0) return {};
    return "child exited with status " + std::to_string(WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) return "child killed by signal " + std::to_string(WTERMSIG(status));
  return "child ended abnormally";
}

// One forked child. The destructor kills and reaps it if it is still there, so no path leaves a
// child behind. With a Shared page, a watchdog thread waits on the child's pidfd and, when the
// child ends, sets `dead` and pokes `pong` and `ready`: a parent blocked in FUTEX_WAIT or spinning
// on them wakes up instead of hanging, at no cost on the hot path.
class Peer {
 public:
  Peer() = default;
  ~Peer() { kill_and_reap(); }
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  // Forks. The child arranges to die with its parent, pins itself to `pin` (if given), reports
  // through sh->ready (if sh is given) and runs body(), which must not return and may use only
  // async-signal-safe calls (the parent may have other threads). Returns "" or the failure.
  template <class Body>
  std::string start(const Mask* pin, Shared* sh, Body body) {
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0) return sys_error("fork");
    if (pid == 0) {
      if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(120);
      if (pin != nullptr && sched_setaffinity(0, mask_bytes(*pin), pin->data()) != 0) {
        if (sh != nullptr) {
          sh->ready.store(kReadyFailed, std::memory_order_release);
          futex_wake(&sh->ready);
        }
        _exit(121);
      }
      if (sh != nullptr) {
        sh->ready.store(kReadyOk, std::memory_order_release);
        futex_wake(&sh->ready);
      }
      body();
      _exit(0);
    }
    pid_ = pid;
    const long pidfd = syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) return sys_error("pidfd_open");
    pidfd_ = static_cast<int>(pidfd);
    if (sh != nullptr) {
      try {
        watchdog_ = std::thread([fd = pidfd_, sh] {
          pollfd p{fd, POLLIN, 0};
          while (poll(&p, 1, -1) < 0 && errno == EINTR) {
          }
          sh->dead.store(1, std::memory_order_release);
          poke(&sh->pong);
          poke(&sh->ready);
        });
      } catch (const std::system_error& e) {
        return std::string("watchdog thread: ") + e.what();
      }
    }
    return {};
  }

  // Waits until the child reports it is pinned and waiting. Returns "" or the failure.
  static std::string wait_ready(Shared* sh) {
    std::uint32_t r;
    while ((r = sh->ready.load(std::memory_order_acquire)) == 0) futex_wait(&sh->ready, 0);
    if (sh->dead.load(std::memory_order_acquire) != 0) return "child exited during setup";
    if (r != kReadyOk) return "child could not pin itself (sched_setaffinity)";
    return {};
  }

  // After the child was told to exit: waits up to timeout_ms for it, kills it after that, reaps
  // it. Returns "" if it exited cleanly, else the failure.
  std::string reap(int timeout_ms) {
    std::string err;
    if (pid_ > 0) {
      pollfd p{pidfd_, POLLIN, 0};
      int r;
      while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
      }
      if (r == 1) {
        int status = 0;
        pid_t w;
        while ((w = waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
        }
        if (w == pid_) {
          pid_ = -1;
          err = describe_status(status);
        } else {
          err = sys_error("waitpid");
        }
      } else {
        err = "child did not exit when told to";
      }
    }
    kill_and_reap();
    return err;
  }

  // Unconditional: SIGKILL, reap, join the watchdog, close the pidfd. Idempotent.
  void kill_and_reap() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
    }
    if (watchdog_.joinable()) watchdog_.join();  // returns: the child is gone
    if (pidfd_ >= 0) ::close(pidfd_);
    pidfd_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::thread watchdog_;
};

constexpr int kReapTimeoutMs = 2000;

// ---- the floors ---------------------------------------------------------------------------------

[[gnu::noinline]] std::uint64_t direct_target(std::uint64_t x) { return x + 1; }

void BM_direct_call(benchmark::State& state) {
  std::uint64_t (*fn)(std::uint64_t) = &direct_target;
  std::uint64_t v = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(fn);  // the compiler no longer knows where fn points
    v = fn(v);
  }
  benchmark::DoNotOptimize(v);
}

// Futex child: waits (FUTEX_WAIT, never spinning) for a new request and answers it.
[[noreturn]] void futex_child(Shared* sh) {
  std::uint32_t last = 0;
  for (;;) {
    std::uint32_t v;
    while ((v = sh->ping.load(std::memory_order_acquire)) == last) futex_wait(&sh->ping, last);
    if (sh->stop.load(std::memory_order_acquire) != 0) _exit(0);
    last = v;
    sh->pong.store(v, std::memory_order_release);
    futex_wake(&sh->pong);
  }
}

// Spin child: spins (no syscalls) for a new request, runs `serve` (if any), and answers it;
// leaves on `stop`.
[[noreturn]] void spin_child(Shared* sh, const std::function<void()>* serve) {
  std::uint32_t last = 0;
  for (;;) {
    std::uint32_t v;
    while ((v = sh->ping.load(std::memory_order_acquire)) == last) {
      if (sh->stop.load(std::memory_order_relaxed) != 0) _exit(0);
      cpu_relax();
    }
    last = v;
    if (serve) (*serve)();
    sh->pong.store(v, std::memory_order_release);
  }
}

enum class Mode { futex_same_cpu, futex_cross_cpu, spin_cross_cpu };

// The work a spin round trip carries (run_spin_cross_cpu); null for the plain floors.
struct Work {
  std::function<void()> send, serve;
};

void run_shared_floor(benchmark::State& state, Mode mode, const Work* work = nullptr) {
  const std::vector<int> cpus = cpu_ids();
  if (cpus.empty()) {
    state.SkipWithError(sys_error("sched_getaffinity").c_str());
    return;
  }
  const bool cross = mode != Mode::futex_same_cpu;
  if (cross && cpus.size() < 2) {
    state.SkipWithError("needs 2 CPUs");
    return;
  }
  const Mask parent_mask = single_cpu_mask(cpus[0]);
  const Mask child_mask = single_cpu_mask(cross ? cpus[1] : cpus[0]);

  AffinityGuard affinity;  // declared first: restored last, after the child is gone
  if (!affinity.ok()) {
    state.SkipWithError(sys_error("sched_getaffinity").c_str());
    return;
  }
  if (!pin_self(parent_mask)) {
    state.SkipWithError(sys_error("sched_setaffinity").c_str());
    return;
  }
  SharedPage page;  // outlives the peer and its watchdog
  Shared* sh = page.get();
  if (sh == nullptr) {
    state.SkipWithError(sys_error("mmap").c_str());
    return;
  }

  Peer peer;
  std::string err = mode == Mode::spin_cross_cpu
                        ? peer.start(&child_mask, sh, [sh, work] { spin_child(sh, work ? &work->serve : nullptr); })
                        : peer.start(&child_mask, sh, [sh] { futex_child(sh); });
  if (err.empty()) err = Peer::wait_ready(sh);
  if (!err.empty()) {
    peer.kill_and_reap();
    state.SkipWithError(err.c_str());
    return;
  }

  std::uint32_t seq = 0;
  bool died = false;
  if (mode == Mode::spin_cross_cpu) {
    for (auto _ : state) {
      ++seq;
      if (work) work->send();
      sh->ping.store(seq, std::memory_order_release);
      while (sh->pong.load(std::memory_order_acquire) != seq) {
        if (sh->dead.load(std::memory_order_relaxed) != 0) {
          died = true;
          break;
        }
        cpu_relax();
      }
      if (died) break;
    }
  } else {
    for (auto _ : state) {
      ++seq;
      sh->ping.store(seq, std::memory_order_release);
      futex_wake(&sh->ping);
      std::uint32_t v;
      while ((v = sh->pong.load(std::memory_order_acquire)) != seq) {
        if (sh->dead.load(std::memory_order_relaxed) != 0) {
          died = true;
          break;
        }
        futex_wait(&sh->pong, v);
      }
      if (died) break;
    }
  }
  if (died) {
    peer.kill_and_reap();
    state.SkipWithError("child exited during the benchmark");
    return;
  }

  // Stop: the flag, then a request so a futex-waiting child wakes up and sees it.
  sh->stop.store(1, std::memory_order_release);
  sh->ping.fetch_add(1, std::memory_order_release);
  futex_wake(&sh->ping);
  err = peer.reap(kReapTimeoutMs);
  if (!err.empty()) state.SkipWithError(err.c_str());
}

}  // namespace

void run_spin_cross_cpu(benchmark::State& state, std::function<void()> send, std::function<void()> serve) {
  const Work work{std::move(send), std::move(serve)};
  run_shared_floor(state, Mode::spin_cross_cpu, &work);
}

namespace {

void BM_futex_same_cpu(benchmark::State& state) { run_shared_floor(state, Mode::futex_same_cpu); }
void BM_futex_cross_cpu(benchmark::State& state) { run_shared_floor(state, Mode::futex_cross_cpu); }
void BM_spin_cross_cpu(benchmark::State& state) { run_shared_floor(state, Mode::spin_cross_cpu); }

bool send_byte(int fd, char c) {
  for (;;) {
    const ssize_t n = send(fd, &c, 1, MSG_NOSIGNAL);
    if (n == 1) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

// 1: got a byte; 0: peer closed; -1: error.
int recv_byte(int fd, char* c) {
  for (;;) {
    const ssize_t n = recv(fd, c, 1, 0);
    if (n >= 0) return static_cast<int>(n);
    if (errno != EINTR) return -1;
  }
}

// Socket child: echoes each byte until the parent closes its end.
[[noreturn]] void socket_child(int parent_fd, int fd) {
  ::close(parent_fd);
  char c;
  for (;;) {
    const int r = recv_byte(fd, &c);
    if (r == 0) _exit(0);
    if (r < 0 || !send_byte(fd, c)) _exit(1);
  }
}

void BM_socketpair(benchmark::State& state) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    state.SkipWithError(sys_error("socketpair").c_str());
    return;
  }
  Fd mine(sv[0]);
  Fd theirs(sv[1]);
  Peer peer;  // declared after the fds: killed before they are closed
  std::string err = peer.start(nullptr, nullptr, [p = sv[0], c = sv[1]] { socket_child(p, c); });
  theirs.reset();
  if (!err.empty()) {
    peer.kill_and_reap();
    state.SkipWithError(err.c_str());
    return;
  }

  const int fd = mine.get();
  char c = 'w';
  bool broken = false;
  for (auto _ : state) {
    if (!send_byte(fd, c)) {
      err = sys_error("socketpair send");
      broken = true;
      break;
    }
    const int r = recv_byte(fd, &c);
    if (r != 1) {
      err = r == 0 ? std::string("child closed the socket") : sys_error("socketpair recv");
      broken = true;
      break;
    }
  }
  if (broken) {
    peer.kill_and_reap();
    state.SkipWithError(err.c_str());
    return;
  }
  mine.reset();  // the child reads EOF and exits
  err = peer.reap(kReapTimeoutMs);
  if (!err.empty()) state.SkipWithError(err.c_str());
}

struct Entry {
  void (*fn)(benchmark::State&);
  bool process_based;
};

// Same order as kFloors.
constexpr std::array<Entry, kFloors.size()> kEntries{{
    {BM_direct_call, false},
    {BM_futex_same_cpu, true},
    {BM_futex_cross_cpu, true},
    {BM_spin_cross_cpu, true},
    {BM_socketpair, true},
}};

}  // namespace

void register_floors() {
  static bool registered = false;
  if (registered) return;
  registered = true;
  for (std::size_t i = 0; i < kFloors.size(); ++i) {
    const std::string name(kFloors[i].name);
    auto* b = benchmark::RegisterBenchmark(name.c_str(), kEntries[i].fn);
    b->MinTime(0.2);
    if (kEntries[i].process_based) b->UseRealTime();
  }
}

std::vector<int> cpu_ids() {
  const Mask m = current_mask();
  std::vector<int> ids;
  const std::size_t bytes = mask_bytes(m);
  for (std::size_t c = 0; c < bytes * 8; ++c)
    if (CPU_ISSET_S(c, bytes, m.data())) ids.push_back(static_cast<int>(c));
  return ids;
}

int usable_cpus() { return static_cast<int>(cpu_ids().size()); }

// ---- the relay floor --------------------------------------------------------------------------

namespace {

constexpr std::size_t kMaxMessage = std::size_t{1} << 20;

// One datagram of up to `cap` bytes into `buf`, EINTR retried; its size, 0 at end of file, -1.
ssize_t recv_datagram(int fd, char* buf, std::size_t cap) {
  ssize_t r;
  while ((r = ::recv(fd, buf, cap, 0)) < 0 && errno == EINTR) {
  }
  return r;
}

bool send_datagram(int fd, const char* buf, std::size_t n) {
  ssize_t w;
  while ((w = ::send(fd, buf, n, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  return w == static_cast<ssize_t>(n);
}

// The server: answers every datagram with `reply` bytes of `buf` until its peer closes.
[[noreturn]] void relay_server(int fd, char* buf, std::size_t reply) {
  for (;;) {
    const ssize_t r = recv_datagram(fd, buf, kMaxMessage);
    if (r == 0) _exit(0);
    if (r < 0 || !send_datagram(fd, buf, reply)) _exit(1);
  }
}

// The relay: each datagram from the client goes to the server, and the server's answer back,
// each read whole into `buf` and written on (the copy through its own memory a relay makes).
[[noreturn]] void relay_middle(int client, int server, char* buf) {
  for (;;) {
    ssize_t r = recv_datagram(client, buf, kMaxMessage);
    if (r == 0) _exit(0);
    if (r < 0 || !send_datagram(server, buf, static_cast<std::size_t>(r))) _exit(1);
    r = recv_datagram(server, buf, kMaxMessage);
    if (r <= 0 || !send_datagram(client, buf, static_cast<std::size_t>(r))) _exit(1);
  }
}

// A SEQPACKET pair whose send buffers take a datagram of `largest` bytes.
std::string seqpacket_pair(int sv[2], std::size_t largest) {
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return sys_error("socketpair");
  const int want = static_cast<int>(2 * largest + 4096);
  for (int i = 0; i < 2; ++i)
    if (::setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &want, sizeof want) != 0) return sys_error("SO_SNDBUF");
  return {};
}

}  // namespace

Result<std::vector<double>> relay_round_trips(int hops, std::size_t request, std::size_t reply, int rounds) {
  if ((hops != 1 && hops != 2) || request < 1 || request > kMaxMessage || reply < 1 || reply > kMaxMessage ||
      rounds < 1)
    return fail(Errc::misuse, "relay_round_trips: hops 1 or 2, messages of 1 byte to 1 MiB, at least one round");
  // Every buffer exists before the fork: the children allocate nothing (the parent may have threads).
  std::vector<char> mine(kMaxMessage), server_buf(kMaxMessage), relay_buf(kMaxMessage);
  for (std::size_t i = 0; i < kMaxMessage; ++i) mine[i] = server_buf[i] = static_cast<char>(i * 131 + 7);
  const std::size_t largest = std::max(request, reply);

  int app[2] = {-1, -1};  // this process <-> the first hop (server or relay)
  int back[2] = {-1, -1};  // relay <-> server (hops = 2)
  std::string err = seqpacket_pair(app, largest);
  if (err.empty() && hops == 2) err = seqpacket_pair(back, largest);
  Fd app0(app[0]), app1(app[1]), back0(back[0]), back1(back[1]);
  if (!err.empty()) return fail(Errc::bad_data, err);
  Peer server, relay;  // declared after the fds: killed before they are closed
  // Each child closes the ends it does not serve, so that it sees end of file when its peer goes.
  const int server_fd = hops == 1 ? app[1] : back[1];
  err = server.start(nullptr, nullptr, [&, server_fd] {
    for (const int fd : {app[0], app[1], back[0], back[1]})
      if (fd >= 0 && fd != server_fd) ::close(fd);
    relay_server(server_fd, server_buf.data(), reply);
  });
  if (err.empty() && hops == 2)
    err = relay.start(nullptr, nullptr, [&] {
      ::close(app[0]);
      ::close(back[1]);
      relay_middle(app[1], back[0], relay_buf.data());
    });
  app1.reset();
  back0.reset();
  back1.reset();
  if (!err.empty()) return fail(Errc::bad_data, err);

  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(rounds));
  for (int i = 0; i < rounds; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!send_datagram(app[0], mine.data(), request)) return fail(Errc::bad_data, sys_error("relay floor: send"));
    const ssize_t r = recv_datagram(app[0], mine.data(), kMaxMessage);
    if (r != static_cast<ssize_t>(reply))
      return fail(Errc::bad_data, r < 0 ? sys_error("relay floor: recv")
                                        : "relay floor: an answer of " + std::to_string(r) + " bytes, not " +
                                              std::to_string(reply));
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  app0.reset();  // end of file for the first hop, and through it for the server
  if (std::string e = relay.reap(kReapTimeoutMs); !e.empty()) return fail(Errc::bad_data, "relay floor: relay: " + e);
  if (std::string e = server.reap(kReapTimeoutMs); !e.empty())
    return fail(Errc::bad_data, "relay floor: server: " + e);
  return us;
}

}  // namespace ward::bench
