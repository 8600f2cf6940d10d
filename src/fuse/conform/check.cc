// Helpers shared by the checks (check.h).
#include "fuse/conform/check.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace ward::conform {

std::string errname(int e) {
  // strerrorname_np (glibc 2.32+) gives the symbol; an unknown number is shown as one.
  const char* n = ::strerrorname_np(e);
  return n ? n : fmt::format("errno {}", e);
}

std::string errnames(std::initializer_list<int> es) {
  std::string s;
  for (int e : es) s += (s.empty() ? "" : "|") + errname(e);
  return s;
}

std::string put(const std::string& path, std::string_view data, mode_t mode) {
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, mode);
  if (fd < 0) return fmt::format("create {}: {}", path, errname(errno));
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n <= 0) {
      int e = errno;
      ::close(fd);
      return fmt::format("write {}: {}", path, n == 0 ? "wrote nothing" : errname(e));
    }
    off += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) return fmt::format("close {}: {}", path, errname(errno));
  return "";
}

std::string get(const std::string& path, bool& ok) {
  ok = false;
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return fmt::format("open {}: {}", path, errname(errno));
  std::string s;
  char b[65536];
  ssize_t n;
  while ((n = ::read(fd, b, sizeof b)) > 0) s.append(b, static_cast<std::size_t>(n));
  int e = errno;
  ::close(fd);
  if (n < 0) return fmt::format("read {}: {}", path, errname(e));
  ok = true;
  return s;
}

std::string pget(int fd, off_t off, std::size_t len) {
  std::string s(len, '\0');
  std::size_t got = 0;
  while (got < len) {
    ssize_t n = ::pread(fd, s.data() + got, len - got, off + static_cast<off_t>(got));
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  s.resize(got);
  return s;
}

bool zeros(std::string_view s) {
  for (char c : s)
    if (c != 0) return false;
  return true;
}

std::string pattern(std::size_t n, std::uint32_t seed) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>((seed = seed * 1103515245u + 12345u) >> 16);
  return s;
}

int set_times(const std::string& path, timespec atime, timespec mtime, bool nofollow) {
  timespec t[2] = {atime, mtime};
  return ::utimensat(AT_FDCWD, path.c_str(), t, nofollow ? AT_SYMLINK_NOFOLLOW : 0);
}

timespec ts(time_t sec, long nsec) { return timespec{sec, nsec}; }

timespec now() {
  timespec t;
  ::clock_gettime(CLOCK_REALTIME, &t);
  return t;
}

int cmp(const timespec& a, const timespec& b) {
  if (a.tv_sec != b.tv_sec) return a.tv_sec < b.tv_sec ? -1 : 1;
  if (a.tv_nsec != b.tv_nsec) return a.tv_nsec < b.tv_nsec ? -1 : 1;
  return 0;
}

std::string show(const timespec& t) { return fmt::format("{}.{:09}", static_cast<long long>(t.tv_sec), t.tv_nsec); }

void tick() {
  // File times come from the coarse clock, which moves once a jiffy (1-10 ms); 30 ms is
  // several ticks at any HZ Linux offers.
  timespec d{0, 30'000'000};
  while (::nanosleep(&d, &d) != 0 && errno == EINTR) {
  }
}

int as_other(const Ctx& c, const std::function<int()>& fn) {
  pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(c.other_gid) != 0 || ::setuid(c.other_uid) != 0) ::_exit(255);
    int r = fn();
    ::_exit(r < 0 || r > 254 ? 254 : r);
  }
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  if (!WIFEXITED(st) || WEXITSTATUS(st) == 255) return -1;
  return WEXITSTATUS(st);
}

bool other_unavailable(const Ctx& c, Outcome& why) {
  if (::geteuid() != 0) {
    why = skipped("needs root, to act as uid {}", c.other_uid);
    return true;
  }
  int r = as_other(c, [&] {
    struct stat st;
    return rc(::stat(c.p(".").c_str(), &st));
  });
  if (r != 0) {
    why = skipped("uid {} cannot reach the directory ({}): a parent denies search, or a FUSE mount lacks allow_other",
                  c.other_uid, r < 0 ? "could not switch user" : errname(r));
    return true;
  }
  return false;
}

std::string remove_tree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return errno == ENOENT ? "" : fmt::format("lstat {}: {}", path, errname(errno));
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0) return fmt::format("unlink {}: {}", path, errname(errno));
    return "";
  }
  if ((st.st_mode & 0700) != 0700) ::chmod(path.c_str(), 0700);
  DIR* d = ::opendir(path.c_str());
  if (!d) return fmt::format("opendir {}: {}", path, errname(errno));
  std::vector<std::string> names;
  while (auto* e = ::readdir(d))
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
  ::closedir(d);
  std::string first;
  for (auto& n : names) {
    std::string r = remove_tree(path + "/" + n);
    if (first.empty()) first = r;
  }
  if (::rmdir(path.c_str()) != 0 && first.empty()) first = fmt::format("rmdir {}: {}", path, errname(errno));
  return first;
}

}  // namespace ward::conform
