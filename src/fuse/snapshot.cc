// Snapshots of a file system's image; the contract is in snapshot.h.
#include "fuse/snapshot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace ward::fuse::detail {
namespace {

// Copies all of `from` (from offset 0) to `to` (from offset 0). Returns 0 or an errno.
int copy_all(int from, int to) {
  loff_t in = 0, out = 0;
  for (;;) {
    ssize_t n = ::copy_file_range(from, &in, to, &out, 1 << 30, 0);
    if (n == 0) return 0;
    if (n > 0) continue;
    if (errno == EINTR) continue;
    if (errno != EXDEV && errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL) return errno;
    // No copy_file_range between these two: plain reads and writes from where it stopped.
    char buf[1 << 16];
    for (;;) {
      ssize_t r = ::pread(from, buf, sizeof buf, in);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return errno;
      if (r == 0) return 0;
      for (ssize_t done = 0; done < r;) {
        ssize_t w = ::pwrite(to, buf + done, r - done, out);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return errno;
        done += w, out += w;
      }
      in += r;
    }
  }
}

}  // namespace

Snapshot::Snapshot(Snapshot&& o) noexcept : path_(std::move(o.path_)), copy_(std::exchange(o.copy_, -1)) {}

Snapshot& Snapshot::operator=(Snapshot&& o) noexcept {
  if (this != &o) {
    if (copy_ >= 0) ::close(copy_);
    path_ = std::move(o.path_);
    copy_ = std::exchange(o.copy_, -1);
  }
  return *this;
}

Snapshot::~Snapshot() {
  if (copy_ >= 0) ::close(copy_);
}

Result<Snapshot> Snapshot::take(const std::string& path) {
  Snapshot s;
  s.path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return s;  // absent: restore() removes what appears there
  if (fd < 0) return fail(Errc::misuse, errno_text("--snapshot " + path, errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail(Errc::misuse, "--snapshot " + path + ": not a regular file");
  }
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  s.copy_ = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (s.copy_ < 0) {
    int e = errno;
    ::close(fd);
    return fail(Errc::load_failed, errno_text("--snapshot " + path + ": an unnamed copy in " + dir, e));
  }
  int e = copy_all(fd, s.copy_);
  ::close(fd);
  if (e != 0) return fail(Errc::load_failed, errno_text("--snapshot " + path + ": copying", e));
  return s;
}

Result<void> Snapshot::restore() const {
  if (copy_ < 0) {
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT)
      return fail(Errc::load_failed, errno_text("restoring " + path_ + " (absent at the start)", errno));
    return {};
  }
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return fail(Errc::load_failed, errno_text("restoring " + path_, errno));
  int e = ::ftruncate(fd, 0) == 0 ? copy_all(copy_, fd) : errno;
  ::close(fd);
  if (e != 0) return fail(Errc::load_failed, errno_text("restoring " + path_, e));
  return {};
}

}  // namespace ward::fuse::detail
