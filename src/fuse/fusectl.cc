// Aborting a FUSE connection through fusectl; the contract is in fusectl.h.
#include "fuse/fusectl.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "fuse/mountinfo.h"

namespace ward::fuse::detail {
namespace {

Result<void> write_abort(const std::string& dir, const std::string& minor) {
  std::string path = dir + "/" + minor + "/abort";
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fail(Errc::load_failed, errno_text("open " + path, errno));
  bool ok = ::write(fd, "1", 1) == 1;
  int err = errno;
  ::close(fd);
  if (!ok) return fail(Errc::misuse, errno_text("write " + path, err));
  return {};
}

}  // namespace

Result<void> abort_connection(const std::string& connection) {
  auto colon = connection.find(':');
  if (colon == std::string::npos || connection.substr(0, colon) != "0" || colon + 1 == connection.size())
    return fail(Errc::misuse, "not a FUSE connection's device: '" + connection + "'");
  const std::string minor = connection.substr(colon + 1);
  for (const MountInfo& m : read_mountinfo())
    if (m.fstype == "fusectl" && ::access((m.mountpoint + "/" + minor).c_str(), F_OK) == 0)
      return write_abort(m.mountpoint, minor);
  char dir[] = "/run/ward-fusectl-XXXXXX";
  if (!::mkdtemp(dir)) return fail(Errc::misuse, errno_text("mkdtemp for fusectl", errno));
  Result<void> r;
  if (::mount("fusectl", dir, "fusectl", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    r = fail(Errc::misuse, errno_text("mount fusectl", errno));
  } else {
    r = write_abort(dir, minor);
    ::umount2(dir, MNT_DETACH);
  }
  ::rmdir(dir);
  return r;
}

std::string fuse_connection_at(const std::string& mountpoint) {
  std::string dev;
  for (const MountInfo& m : read_mountinfo())
    if (m.mountpoint == mountpoint && m.fstype.starts_with("fuse")) dev = m.dev;
  return dev;
}

}  // namespace ward::fuse::detail
