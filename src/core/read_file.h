// Reading a whole (small) file, such as another process's /proc entry, without a stream.
//
// Why not std::ifstream and std::istreambuf_iterator: a /proc file of a process that ends while it
// is read fails the read with ESRCH, and libstdc++'s filebuf throws for a failed read whatever the
// stream's exception mask says; through an istreambuf_iterator nothing catches it (a test's
// teardown died of it, and `ward fuse status` or the fusermount stand-in could have).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace ward {

// What could be read of `path`: "" when it cannot be opened; up to the failure when a read fails
// (a process that ended meanwhile). Never throws for the file's sake.
inline std::string read_file(const std::string& path) {
  std::string out;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char b[16384];
  for (;;) {
    const ssize_t n = ::read(fd, b, sizeof b);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(b, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace ward
