#include "fuse/user_access.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <vector>

#include "core/readable.h"
#include "core/unique_fd.h"
#include "fuse/sandbox.h"
#include "fuse/status.h"

namespace ward::fuse::detail {

namespace {

constexpr std::chrono::milliseconds kCheckDeadline{5000};

struct Path {
  std::string path, from;  // `from`: where it came from, for the error
  UniqueFd fd;             // O_PATH, opened as root: the path itself, whatever leads to it
  int mode = R_OK;
};

// What the child reports: the index of the first path the user cannot read and its errno, or
// index -1.
struct Verdict {
  int index = -1, err = 0;
};

}  // namespace

Result<void> check_user_reaches(const Options& o) {
  if (!o.user) return {};
  const std::string mnt = absolute_mountpoint(o.mountpoint);
  std::vector<Path> paths;
  for (const auto* list : {&o.see, &o.see_ro})
    for (const auto& p : *list)
      paths.push_back({WARD_TRY(resolve_seen(list == &o.see ? "--see " : "--see-ro ", p, mnt)),
                       list == &o.see ? "--see" : "--see-ro", {}, R_OK});
  if (o.auto_see)
    for (auto& p : WARD_TRY(named_paths(o.command, mnt))) paths.push_back({std::move(p), "the command line"});
  if (paths.empty()) return {};

  for (auto& p : paths) {
    struct stat st {};
    if (::stat(p.path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) p.mode = R_OK | X_OK;
    if (o.sandbox) {
      p.fd = UniqueFd(::open(p.path.c_str(), O_PATH | O_CLOEXEC));
      if (!p.fd.valid()) return fail(Errc::misuse, errno_text(p.path + " (" + p.from + ")", errno));
    }
  }
  std::vector<gid_t> groups(o.user->groups.begin(), o.user->groups.end());
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return fail(Errc::load_failed, errno_text("pipe2", errno));
  UniqueFd from_child(pipe_fds[0]), to_parent(pipe_fds[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return fail(Errc::load_failed, errno_text("fork", errno));
  if (pid == 0) {
    // Raw system calls: glibc's set*id would try to change every thread of a process that had
    // several, and after fork(2) only this one exists. Nothing here allocates.
    Verdict v;
    if (::syscall(SYS_setgroups, groups.size(), groups.data()) != 0 ||
        ::syscall(SYS_setresgid, o.user->gid, o.user->gid, o.user->gid) != 0 ||
        ::syscall(SYS_setresuid, o.user->uid, o.user->uid, o.user->uid) != 0) {
      v.index = -2, v.err = errno;
    } else {
      for (std::size_t i = 0; i < paths.size() && v.index == -1; ++i) {
        const long r = paths[i].fd.valid()
                           ? ::syscall(SYS_faccessat2, paths[i].fd.get(), "", paths[i].mode, AT_EMPTY_PATH)
                           : ::syscall(SYS_faccessat2, AT_FDCWD, paths[i].path.c_str(), paths[i].mode, 0);
        if (r != 0) v.index = static_cast<int>(i), v.err = errno;
      }
    }
    (void)!::write(to_parent.get(), &v, sizeof v);
    ::_exit(0);
  }
  to_parent.close();
  Verdict v{-3, 0};
  const bool ready = readable_within(from_child.get(), kCheckDeadline);
  if (ready && ::read(from_child.get(), &v, sizeof v) != sizeof v) v = {-3, 0};
  if (!ready) ::kill(pid, SIGKILL);
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {}
  const std::string who = display_name(*o.user);
  if (!ready)
    return fail(Errc::hung, "checking what " + who + " may read took over " +
                                std::to_string(kCheckDeadline.count()) + " ms (a path on a mount that does not answer?)");
  if (v.index == -2) return fail(Errc::load_failed, errno_text("taking the ids of " + who + " to check its paths", v.err));
  if (v.index < 0 || static_cast<std::size_t>(v.index) >= paths.size())
    return v.index == -1 ? Result<void>{} : fail(Errc::load_failed, "checking what " + who + " may read: no answer");
  const Path& bad = paths[static_cast<std::size_t>(v.index)];
  std::string what = "--user " + who + ": the file system could not " + (bad.mode & X_OK ? "list " : "read ") +
                     bad.path + " (named by " + bad.from + ")";
  std::string hint = "; give " + who + " access to it" +
                     (bad.from == "the command line" ? ", or say --no-auto-see if the file system does not use it" : "");
  return fail(Errc::misuse, errno_text(what, v.err) + hint);
}

}  // namespace ward::fuse::detail
