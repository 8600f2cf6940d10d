// The file system's environment (launch.h: fs_environment). Checked here rather than in a running
// file system: glibc rewrites GLIBC_TUNABLES in the memory /proc/PID/environ shows as it parses it.
#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fuse/launch.h"

namespace {

using ward::fuse::User;
using ward::fuse::detail::fs_environment;

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

constexpr const char* kOurs = "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576:glibc.malloc.trim_threshold=4194304";

// The malloc tunables lead; the user's own come after them (glibc takes the last value of a
// name, so the user's win); nothing else changes without a user.
TEST(FuseLaunch, TheFileSystemsMallocKeepsReplyBuffersAndTheUsersTunablesWin) {
  EXPECT_EQ(sorted(fs_environment({"PATH=/bin", "HOME=/root"}, std::nullopt)),
            sorted({"PATH=/bin", "HOME=/root", kOurs}));
  EXPECT_EQ(sorted(fs_environment({"GLIBC_TUNABLES=glibc.malloc.trim_threshold=1", "A=b"}, std::nullopt)),
            sorted({"A=b", std::string(kOurs) + ":glibc.malloc.trim_threshold=1"}));
  EXPECT_EQ(sorted(fs_environment({"GLIBC_TUNABLES="}, std::nullopt)), sorted({kOurs}));
}

// --user: HOME, USER and LOGNAME are the user's when the database knows it; a bare uid keeps ward's.
TEST(FuseLaunch, AUsersLoginVariables) {
  User u{.uid = 1000, .gid = 1000, .groups = {1000}, .name = "alice", .home = "/home/alice"};
  EXPECT_EQ(sorted(fs_environment({"HOME=/root", "USER=root", "X=y"}, u)),
            sorted({"HOME=/home/alice", "USER=alice", "LOGNAME=alice", "X=y", kOurs}));
  User bare{.uid = 4242, .gid = 4242, .groups = {4242}, .name = "", .home = ""};
  EXPECT_EQ(sorted(fs_environment({"HOME=/root"}, bare)), sorted({"HOME=/root", kOurs}));
}

}  // namespace
