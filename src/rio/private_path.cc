#include "rio/private_path.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace ward::rio {
namespace fs = std::filesystem;

namespace {

std::string mode_str(mode_t m) {
  char b[8];
  std::snprintf(b, sizeof b, "%04o", static_cast<unsigned>(m & 07777));
  return b;
}

// The common part: who owns it and who else may touch it.
Result<void> check_owner_mode(const struct stat& st, const fs::path& path, const char* what) {
  if (st.st_uid != geteuid())
    return fail(Errc::misuse, "rio: " + path.string() + " is owned by uid " + std::to_string(st.st_uid) + ", not by this user (uid " +
                                  std::to_string(geteuid()) + "); ward does not use a " + what +
                                  " someone else created (remove it, or choose another path)");
  if ((st.st_mode & 077) != 0)
    return fail(Errc::misuse, "rio: " + path.string() + " has mode " + mode_str(st.st_mode) +
                                  ": other users may access it; ward uses only a private " + what + " (0700/0600)");
  return {};
}

}  // namespace

Result<void> ensure_private_dir(const fs::path& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return fail(Errc::misuse, "rio: cannot create " + dir.string() + ": " + std::strerror(errno));
  // O_NOFOLLOW: a planted symlink in place of the directory fails here (ELOOP or ENOTDIR).
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    struct stat lst {};
    if (lstat(dir.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode))
      return fail(Errc::misuse, "rio: " + dir.string() + " is a symbolic link (owned by uid " + std::to_string(lst.st_uid) +
                                    "); ward does not follow links to its private directories");
    return fail(Errc::misuse, "rio: " + dir.string() + " is not a usable directory: " + std::strerror(e));
  }
  struct stat st {};
  const int rc = fstat(fd, &st);
  ::close(fd);
  if (rc != 0) return fail(Errc::misuse, "rio: fstat " + dir.string() + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) return fail(Errc::misuse, "rio: " + dir.string() + " is not a directory");
  return check_owner_mode(st, dir, "directory");
}

Result<fs::path> make_private_dir(const fs::path& parent, std::string_view prefix) {
  std::string tmpl = (parent / prefix).string() + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  // mkdtemp: mode 0700, and mkdir fails on anything already there (a link included).
  if (mkdtemp(buf.data()) == nullptr) return fail(Errc::misuse, "rio: cannot create a directory " + tmpl + ": " + std::strerror(errno));
  return fs::path(buf.data());
}

Result<void> check_private_file(const struct stat& st, const fs::path& path) {
  if (!S_ISREG(st.st_mode)) return fail(Errc::misuse, "rio: " + path.string() + " is not a regular file");
  WARD_TRY(check_owner_mode(st, path, "file"));
  if (st.st_nlink != 1)
    return fail(Errc::misuse, "rio: " + path.string() + " has " + std::to_string(st.st_nlink) +
                                  " hard links; ward uses only a file it created (one link)");
  return {};
}

Result<void> check_trusted_dir(const fs::path& dir) {
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) return fail(Errc::misuse, "rio: " + dir.string() + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) return fail(Errc::misuse, "rio: " + dir.string() + " is not a directory");
  if (st.st_uid != geteuid() && st.st_uid != 0)
    return fail(Errc::misuse, "rio: directory " + dir.string() + " is owned by uid " + std::to_string(st.st_uid) +
                                  ", who could replace what ward keeps in it; use a directory owned by this user or root");
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0)
    return fail(Errc::misuse, "rio: directory " + dir.string() + " has mode " + mode_str(st.st_mode) +
                                  ": others may write it and it is not sticky, so they could replace what ward keeps in it");
  return {};
}

}  // namespace ward::rio
