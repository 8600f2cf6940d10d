// Notifications written by a thread of their own; the contract is in notifier.h.
#include "fuse/notifier.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <vector>

namespace ward::fuse::detail {

struct Notifier::Shared {
  explicit Shared(int f) : fd(f) {}
  ~Shared() { ::close(fd); }
  const int fd;
  std::mutex mu;
  std::condition_variable cv;  // work for the thread, or its end
  std::deque<std::vector<char>> queue;
  std::size_t bytes = 0;
  bool stopping = false;
  bool ended = false;
  std::size_t refused = 0;
  int last_errno = 0;
};

Result<std::unique_ptr<Notifier>> Notifier::start(int kfd) {
  int fd = ::fcntl(kfd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return fail(Errc::misuse, errno_text("dup of /dev/fuse for notifications", errno));
  auto s = std::make_shared<Shared>(fd);
  std::unique_ptr<Notifier> n(new Notifier(s));
  try {
    // The thread holds the shared state: a thread the kernel never lets go outlives the Notifier.
    n->thread_ = std::thread([s] {
      std::unique_lock lock(s->mu);
      for (;;) {
        s->cv.wait(lock, [&] { return s->stopping || !s->queue.empty(); });
        if (s->stopping) break;
        std::vector<char> m = std::move(s->queue.front());
        s->queue.pop_front();
        s->bytes -= m.size();
        lock.unlock();
        // The kernel acts on the notification here and may wait for a lock (O_NONBLOCK, shared
        // with the relay's descriptor, concerns reads only): that wait is this thread's.
        ssize_t w = ::write(s->fd, m.data(), m.size());
        int err = w < 0 ? errno : 0;
        lock.lock();
        if (err != 0 && err != ENOENT) ++s->refused, s->last_errno = err;
      }
      s->ended = true;
      s->cv.notify_all();
    });
  } catch (const std::system_error& e) {
    return fail(Errc::misuse, std::string("starting the notification thread: ") + e.what());
  }
  return n;
}

Notifier::Notifier(std::shared_ptr<Shared> s) : s_(std::move(s)) {}

Notifier::~Notifier() {
  if (!thread_.joinable()) return;
  if (stop(std::chrono::milliseconds(0))) return;
  thread_.detach();
}

bool Notifier::post(const char* msg, std::size_t n) {
  std::lock_guard lock(s_->mu);
  if (s_->stopping || s_->queue.size() >= kMaxQueued || s_->bytes + n > kMaxBytes) return false;
  s_->queue.emplace_back(msg, msg + n);
  s_->bytes += n;
  s_->cv.notify_all();
  return true;
}

bool Notifier::stop(std::chrono::milliseconds limit) {
  {
    std::unique_lock lock(s_->mu);
    s_->stopping = true;
    s_->queue.clear();
    s_->bytes = 0;
    s_->cv.notify_all();
    if (!s_->cv.wait_for(lock, limit, [&] { return s_->ended; })) return false;
  }
  if (thread_.joinable()) thread_.join();
  return true;
}

std::size_t Notifier::refused() const {
  std::lock_guard lock(s_->mu);
  return s_->refused;
}

int Notifier::last_errno() const {
  std::lock_guard lock(s_->mu);
  return s_->last_errno;
}

}  // namespace ward::fuse::detail
