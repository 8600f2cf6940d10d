// WorkerPool: a small fixed-size thread pool. ward uses it to run asynchronous event handlers
// (BindOptions::async): the raise hands the handler, with copies of its arguments, to the pool
// and returns without waiting.
//
// The pool is deliberately plain: one mutex-protected FIFO queue, N threads. Async handlers are
// the slow path by design (each raise that reaches one allocates a task and takes the queue lock),
// so the pool optimises for being obviously correct rather than for throughput.
//
// Contracts:
//  - Tasks run in FIFO order of submission per pool, on any of the pool's threads, each exactly
//    once, unless submit() returned an error (then the task was destroyed without running).
//  - shutdown() stops accepting tasks, lets the threads finish every task already queued (tasks
//    queued before shutdown are not dropped: an accepted async raise is never lost silently),
//    then joins them. It is idempotent and may be called from any thread, including a pool thread
//    (that one thread is detached instead of joined, since a thread cannot join itself).
//  - A task that throws is caught by the pool and counted (uncaught()); the thread survives.
//  - Every member function is thread-safe.
//
// The process-wide default pool (default_pool()) has one thread per usable CPU, is created on
// first use and is never destroyed (so raises that happen during static destruction still find a
// valid object); it is shut down, i.e. drained and joined, by an atexit handler registered when
// it is created. After that, submit() on it fails with Errc::misuse.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "ward/core/error.h"

namespace ward {

class WorkerPool {
 public:
  using Task = std::move_only_function<void()>;

  // Starts `threads` threads (0: one per usable CPU, at least 1). If a thread cannot be started,
  // the pool runs with the ones that did start (size() tells); with none, submit() fails.
  explicit WorkerPool(std::size_t threads = 0);
  ~WorkerPool();  // shutdown()
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task`. Errors: misuse (the pool is shut down or has no threads; `task` is destroyed
  // without running, on the calling thread).
  Result<void> submit(Task task);

  // Blocks until the queue is empty and no task is running. Tasks submitted concurrently may or
  // may not be waited for. Must not be called from a pool thread (returns misuse instead of
  // deadlocking).
  Result<void> wait_idle();

  // See the contracts above.
  void shutdown();

  std::size_t size() const { return size_; }
  std::uint64_t uncaught() const;  // tasks that threw

  // True when the calling thread is one of this pool's threads.
  bool on_pool_thread() const;

  // The process-wide pool used by async event handlers.
  static WorkerPool& default_pool();

 private:
  void run();

  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // workers wait here for tasks or shutdown
  std::condition_variable idle_cv_;  // wait_idle() waits here
  std::deque<Task> queue_;
  std::size_t running_ = 0;          // tasks being run right now
  bool stopping_ = false;
  std::uint64_t uncaught_ = 0;
  std::vector<std::thread> threads_;
  std::size_t size_ = 0;
};

}  // namespace ward
