// Notifications from the file system (FUSE_NOTIFY_*), written to /dev/fuse by a thread of their
// own instead of the relay's.
//
// Why. The kernel acts on a notification inside the write(2) that delivers it, and may wait there:
// INVAL_ENTRY and DELETE for the directory's lock, INVAL_INODE, STORE and RETRIEVE for locked
// pages. A request in flight can hold that lock (RENAME, RMDIR, CREATE hold the directory; a
// READ its pages) while its reply sits behind the notification in ward's socket. Written by the
// relay's only thread, the notification waited for a reply only that thread could pass on: ward
// hung in the kernel for good, past every deadline, unkillable (found with rclone, which sends
// INVAL_ENTRY around its RENAME replies; `ward-fuse-hostile notify-rename` does it on purpose). A
// file system mounted directly writes notifications from threads of its own, so its replies go on.
//
// Contract. post() never blocks: it queues a copy, or returns false when kMaxQueued messages or
// kMaxBytes already wait (a flood while the thread is held up; the caller drops it and says so).
// The thread writes them in the order posted, to its own duplicate of the descriptor, so closing
// the relay's never leaves it writing to a reused number. stop() drops what was not written yet
// and waits up to `limit` for the thread to end; false when it is still inside a write the kernel
// holds (the caller aborts the connection, which ends that wait, and calls stop() again). The
// destructor detaches a thread that never ended; what it uses outlives the Notifier. post() and
// stop() from one thread (the relay's).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <thread>

#include "ward/core/error.h"

namespace ward::fuse::detail {

class Notifier {
 public:
  static constexpr std::size_t kMaxQueued = 4096;
  static constexpr std::size_t kMaxBytes = 16 << 20;

  // Starts the thread; `kfd` is duplicated. Errors: the dup or the thread could not be made.
  static Result<std::unique_ptr<Notifier>> start(int kfd);
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  bool post(const char* msg, std::size_t n);
  bool stop(std::chrono::milliseconds limit);
  // Notifications the kernel refused (an error other than ENOENT: the node was not cached), and the
  // last such errno; for the relay's log.
  std::size_t refused() const;
  int last_errno() const;

 private:
  struct Shared;
  explicit Notifier(std::shared_ptr<Shared> s);
  std::shared_ptr<Shared> s_;
  std::thread thread_;
};

}  // namespace ward::fuse::detail
