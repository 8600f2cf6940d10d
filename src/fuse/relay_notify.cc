// The FUSE relay's notifications (FUSE_NOTIFY_*) from the file system: their node ids made
// ward's, then handed to the notification thread (notifier.h), which writes them to the kernel
// apart from the relay's thread; and that thread's end. relay_impl.h has the class's contract.
#include "fuse/fusectl.h"
#include "fuse/relay_impl.h"

namespace ward::fuse::detail {

// A notification: node ids in it become ward's; one naming a node ward does not know is
// dropped (the kernel cannot have it cached).
Result<void> Relay::notification(std::size_t n) {
  auto oh = load<fuse_out_header>(buf_.data());
  char* body = buf_.data() + sizeof oh;
  std::size_t blen = n - sizeof oh;
  auto map = [&](std::size_t at) {
    if (blen < at + 8) return false;
    std::uint64_t id = nodes_.to_ward(load<std::uint64_t>(body + at));
    if (id == 0) return false;
    store(body + at, id);
    return true;
  };
  bool keep = true;
  switch (oh.error) {
    case FUSE_NOTIFY_INVAL_INODE: keep = map(offsetof(fuse_notify_inval_inode_out, ino)); break;
    case FUSE_NOTIFY_INVAL_ENTRY: keep = map(offsetof(fuse_notify_inval_entry_out, parent)); break;
    case FUSE_NOTIFY_DELETE:
      keep = map(offsetof(fuse_notify_delete_out, parent)) && map(offsetof(fuse_notify_delete_out, child));
      break;
    case FUSE_NOTIFY_STORE: keep = map(offsetof(fuse_notify_store_out, nodeid)); break;
    case FUSE_NOTIFY_RETRIEVE: keep = map(offsetof(fuse_notify_retrieve_out, nodeid)); break;
    default: break;  // POLL (a poll handle, not a node) and newer codes: the kernel checks them
  }
  if (!keep) return {};
  // Not written here: the kernel may hold the write until a request in flight lets go of a lock,
  // and that request's reply may be behind this in the socket (notifier.h).
  if (!notifier_) {
    auto started = Notifier::start(kfd_);
    if (!started) {
      log("notifications are dropped: " + started.error().detail);
      return {};
    }
    notifier_ = std::move(*started);
  }
  if (std::size_t refused = notifier_->refused(); refused != notifications_refused_) {
    notifications_refused_ = refused;
    log(errno_text("the kernel refused a notification (" + std::to_string(refused) + " so far)", notifier_->last_errno()));
  }
  if (!notifier_->post(buf_.data(), n) && !notifications_dropped_++)
    log("notifications are arriving faster than the kernel takes them: dropped (the kernel's caches may "
        "be stale until they time out)");
  return {};
}

// The notification thread ends with the relay. One the kernel holds in a write (a lock that a
// request nobody will answer now holds) is let go by aborting the connection: the mount is gone
// and ward is ending, so nothing else waits on it.
void Relay::stop_notifier() {
  if (!notifier_) return;
  if (!notifier_->stop(std::chrono::seconds(1))) {
    auto aborted = connection_.empty() ? fail(Errc::misuse, "its device is not known") : abort_connection(connection_);
    log(aborted ? "a notification the kernel held was ended by aborting the connection"
                : "a notification the kernel holds could not be ended (" + aborted.error().detail +
                      "); its thread is left behind");
    if (aborted) (void)notifier_->stop(std::chrono::seconds(5));
  }
  notifier_.reset();
}

}  // namespace ward::fuse::detail
