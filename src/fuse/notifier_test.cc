// The notification thread (src/fuse/notifier.h) on a pipe standing in for /dev/fuse: a write the
// "kernel" holds does not hold up post(), a flood past the bound is refused, and stop() says
// whether the thread ended. FuseRelay.ANotificationWaitingForALockDoesNotHoldUpReplies is the
// same through the kernel.
#include "fuse/notifier.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

using ward::fuse::detail::Notifier;

TEST(FuseNotifier, AHeldWriteNeitherBlocksPostNorHidesItsEnd) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ASSERT_GE(::fcntl(p[1], F_SETPIPE_SZ, 4096), 0);
  auto n = Notifier::start(p[1]);
  ASSERT_TRUE(n) << n.error().detail;
  // 8 KiB messages into a 4 KiB pipe: the thread's first write blocks, as the kernel holds one.
  std::vector<char> msg(8192, 'x');
  std::size_t taken = 0;
  while (taken < Notifier::kMaxQueued + 10 && (*n)->post(msg.data(), msg.size())) ++taken;
  // The bound is bytes here (16 MiB / 8 KiB = 2048 queued, one more in the thread's hands).
  EXPECT_LE(taken, Notifier::kMaxBytes / msg.size() + 1);
  EXPECT_GE(taken, Notifier::kMaxBytes / msg.size());
  EXPECT_FALSE((*n)->stop(std::chrono::milliseconds(100))) << "the thread is inside a write that cannot end";
  // The "kernel" lets go: the write ends, the queue was dropped by stop(), the thread ends.
  std::vector<char> sink(1 << 16);
  ::fcntl(p[0], F_SETFL, O_NONBLOCK);
  for (int i = 0; i < 100 && (*n)->stop(std::chrono::milliseconds(0)) == false; ++i)
    (void)!::read(p[0], sink.data(), sink.size()), ::usleep(10'000);
  EXPECT_TRUE((*n)->stop(std::chrono::milliseconds(1000)));
  n->reset();
  ::close(p[0]);
  ::close(p[1]);
}

TEST(FuseNotifier, WritesWhatIsPostedInOrder) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  auto n = Notifier::start(p[1]);
  ASSERT_TRUE(n) << n.error().detail;
  std::string want;
  for (int i = 0; i < 50; ++i) {
    std::string m = "notification " + std::to_string(i) + ";";
    ASSERT_TRUE((*n)->post(m.data(), m.size()));
    want += m;
  }
  std::string got;
  char buf[4096];
  while (got.size() < want.size()) {
    ssize_t r = ::read(p[0], buf, sizeof buf);
    ASSERT_GT(r, 0);
    got.append(buf, static_cast<std::size_t>(r));
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ((*n)->refused(), 0u);
  EXPECT_TRUE((*n)->stop(std::chrono::milliseconds(1000)));
  ::close(p[0]);
  ::close(p[1]);
}

}  // namespace
