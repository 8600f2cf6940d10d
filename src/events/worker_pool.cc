#include "ward/events/worker_pool.h"

#include <sched.h>

#include <cstdlib>
#include <exception>
#include <system_error>
#include <utility>

namespace ward {
namespace {

// The pool whose run() loop the calling thread is in (nullptr elsewhere). Lets shutdown() and
// wait_idle() recognise calls made from inside a task, which would otherwise self-deadlock.
thread_local const WorkerPool* tls_current_pool = nullptr;

std::size_t usable_cpu_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<std::size_t>(n);
  }
  const unsigned hc = std::thread::hardware_concurrency();
  return hc > 0 ? hc : 1;
}

}  // namespace

WorkerPool::WorkerPool(std::size_t threads) {
  if (threads == 0) threads = usable_cpu_count();
  threads_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) {
    try {
      threads_.emplace_back([this] { run(); });
    } catch (const std::system_error&) {
      break;  // run with what we have; size() reports it
    }
  }
  size_ = threads_.size();
}

WorkerPool::~WorkerPool() { shutdown(); }

Result<void> WorkerPool::submit(Task task) {
  {
    std::lock_guard lk(mu_);
    if (!stopping_ && size_ > 0) {
      queue_.push_back(std::move(task));
      // Notify under the lock: shutdown() may otherwise destroy the condition variable of a
      // pool that is being torn down between our unlock and the notify.
      work_cv_.notify_one();
      return {};
    }
  }
  // Destroy the task outside the lock: its destructor may release resources that take locks.
  task = nullptr;
  return fail(Errc::misuse, size_ == 0 ? "worker pool has no threads" : "worker pool is shut down");
}

Result<void> WorkerPool::wait_idle() {
  if (tls_current_pool == this) return fail(Errc::misuse, "wait_idle() called from a pool thread");
  std::unique_lock lk(mu_);
  idle_cv_.wait(lk, [this] { return queue_.empty() && running_ == 0; });
  return {};
}

void WorkerPool::shutdown() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    threads.swap(threads_);  // a second shutdown() finds nothing to join
    work_cv_.notify_all();
  }
  for (std::thread& t : threads) {
    if (t.get_id() == std::this_thread::get_id()) {
      t.detach();  // shutdown from inside a task: we cannot join ourselves
    } else {
      t.join();
    }
  }
}

std::uint64_t WorkerPool::uncaught() const {
  std::lock_guard lk(mu_);
  return uncaught_;
}

bool WorkerPool::on_pool_thread() const { return tls_current_pool == this; }

void WorkerPool::run() {
  tls_current_pool = this;
  std::unique_lock lk(mu_);
  for (;;) {
    work_cv_.wait(lk, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) break;  // stopping and drained
    Task task = std::move(queue_.front());
    queue_.pop_front();
    ++running_;
    lk.unlock();
    bool threw = false;
    try {
      task();
    } catch (...) {
      threw = true;
    }
    task = nullptr;  // destroy captures outside the lock too
    lk.lock();
    --running_;
    if (threw) ++uncaught_;
    if (queue_.empty() && running_ == 0) idle_cv_.notify_all();
  }
  tls_current_pool = nullptr;
}

WorkerPool& WorkerPool::default_pool() {
  // Leaked on purpose: never destroyed, so a raise during static destruction (after the atexit
  // handler below ran) gets a clean "shut down" error instead of touching a dead object.
  static WorkerPool* const pool = [] {
    auto* p = new WorkerPool(0);
    std::atexit([] { WorkerPool::default_pool().shutdown(); });
    return p;
  }();
  return *pool;
}

}  // namespace ward
