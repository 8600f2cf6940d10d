// ward-fuse-buffering BACKING MOUNTPOINT [libfuse options]: a libfuse3 file system for ward's
// tests that behaves like the write-back file systems people use (s3fs, sshfs with write-back):
// WRITEs are acknowledged at once and held in the process's memory; they reach the backing
// directory only at FLUSH, FSYNC or RELEASE. Killed in between, it loses acknowledged writes —
// what `ward fuse --rio` is for (docs/fuse.md). Otherwise a plain passthrough of BACKING.
// Single-threaded (-s is added): the held writes need no lock.
#define FUSE_USE_VERSION 31
#include <fuse3/fuse.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

std::string g_backing;

struct Held {
  off_t off;
  std::string data;
};
std::map<std::string, std::vector<Held>> g_held;  // by path, in the order written

std::string real(const char* path) { return g_backing + path; }

// Writes what is held for `path` into the backing file. 0 or -errno.
int settle(const std::string& path) {
  auto it = g_held.find(path);
  if (it == g_held.end()) return 0;
  int fd = ::open(real(path.c_str()).c_str(), O_WRONLY);
  if (fd < 0) return -errno;
  for (const Held& h : it->second)
    if (::pwrite(fd, h.data.data(), h.data.size(), h.off) != static_cast<ssize_t>(h.data.size())) {
      int e = errno;
      ::close(fd);
      return -e;
    }
  ::close(fd);
  g_held.erase(it);
  return 0;
}

off_t held_end(const std::string& path) {
  off_t end = 0;
  if (auto it = g_held.find(path); it != g_held.end())
    for (const Held& h : it->second) end = std::max<off_t>(end, h.off + static_cast<off_t>(h.data.size()));
  return end;
}

int bf_getattr(const char* path, struct stat* st, fuse_file_info*) {
  if (::lstat(real(path).c_str(), st) != 0) return -errno;
  st->st_size = std::max(st->st_size, held_end(path));
  return 0;
}

int bf_readdir(const char* path, void* buf, fuse_fill_dir_t fill, off_t, fuse_file_info*, fuse_readdir_flags) {
  DIR* d = ::opendir(real(path).c_str());
  if (!d) return -errno;
  while (dirent* e = ::readdir(d)) fill(buf, e->d_name, nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  ::closedir(d);
  return 0;
}

int bf_open(const char* path, fuse_file_info* fi) {
  int fd = ::open(real(path).c_str(), fi->flags & ~(O_CREAT | O_EXCL));
  if (fd < 0) return -errno;
  ::close(fd);
  return 0;
}

int bf_create(const char* path, mode_t mode, fuse_file_info* fi) {
  int fd = ::open(real(path).c_str(), fi->flags | O_CREAT, mode);
  if (fd < 0) return -errno;
  ::close(fd);
  return 0;
}

int bf_read(const char* path, char* buf, size_t size, off_t off, fuse_file_info*) {
  int fd = ::open(real(path).c_str(), O_RDONLY);
  if (fd < 0) return -errno;
  ssize_t n = ::pread(fd, buf, size, off);
  ::close(fd);
  if (n < 0) return -errno;
  // What is held is newer than the backing file: laid over it, and it may extend it.
  off_t end = std::min<off_t>(off + static_cast<off_t>(size), std::max<off_t>(off + n, held_end(path)));
  if (end > off + n) std::memset(buf + n, 0, end - off - n), n = end - off;
  if (auto it = g_held.find(path); it != g_held.end())
    for (const Held& h : it->second) {
      off_t a = std::max(off, h.off), b = std::min<off_t>(off + n, h.off + static_cast<off_t>(h.data.size()));
      if (a < b) std::memcpy(buf + (a - off), h.data.data() + (a - h.off), b - a);
    }
  return static_cast<int>(n);
}

int bf_write(const char* path, const char* buf, size_t size, off_t off, fuse_file_info*) {
  g_held[path].push_back({off, std::string(buf, size)});
  return static_cast<int>(size);
}

int bf_flush(const char* path, fuse_file_info*) { return settle(path); }
int bf_fsync(const char* path, int, fuse_file_info*) { return settle(path); }
int bf_release(const char* path, fuse_file_info*) { return settle(path); }

int bf_truncate(const char* path, off_t size, fuse_file_info*) {
  if (int e = settle(path)) return e;
  return ::truncate(real(path).c_str(), size) == 0 ? 0 : -errno;
}

int bf_unlink(const char* path) {
  g_held.erase(path);
  return ::unlink(real(path).c_str()) == 0 ? 0 : -errno;
}

int bf_rename(const char* from, const char* to, unsigned int flags) {
  if (flags) return -EINVAL;
  if (int e = settle(from)) return e;
  g_held.erase(to);
  return ::rename(real(from).c_str(), real(to).c_str()) == 0 ? 0 : -errno;
}

int bf_mkdir(const char* path, mode_t mode) { return ::mkdir(real(path).c_str(), mode) == 0 ? 0 : -errno; }
int bf_rmdir(const char* path) { return ::rmdir(real(path).c_str()) == 0 ? 0 : -errno; }
int bf_symlink(const char* target, const char* path) {
  return ::symlink(target, real(path).c_str()) == 0 ? 0 : -errno;
}
int bf_readlink(const char* path, char* buf, size_t size) {
  ssize_t n = ::readlink(real(path).c_str(), buf, size - 1);
  if (n < 0) return -errno;
  buf[n] = 0;
  return 0;
}
int bf_chmod(const char* path, mode_t mode, fuse_file_info*) {
  return ::chmod(real(path).c_str(), mode) == 0 ? 0 : -errno;
}
int bf_utimens(const char* path, const timespec tv[2], fuse_file_info*) {
  return ::utimensat(AT_FDCWD, real(path).c_str(), tv, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: ward-fuse-buffering BACKING MOUNTPOINT [libfuse options]\n");
    return 2;
  }
  char resolved[PATH_MAX];
  if (!::realpath(argv[1], resolved)) {
    std::perror(argv[1]);
    return 2;
  }
  g_backing = resolved;
  fuse_operations ops{};
  ops.getattr = bf_getattr;
  ops.readdir = bf_readdir;
  ops.open = bf_open;
  ops.create = bf_create;
  ops.read = bf_read;
  ops.write = bf_write;
  ops.flush = bf_flush;
  ops.fsync = bf_fsync;
  ops.release = bf_release;
  ops.truncate = bf_truncate;
  ops.unlink = bf_unlink;
  ops.rename = bf_rename;
  ops.mkdir = bf_mkdir;
  ops.rmdir = bf_rmdir;
  ops.symlink = bf_symlink;
  ops.readlink = bf_readlink;
  ops.chmod = bf_chmod;
  ops.utimens = bf_utimens;
  std::vector<char*> args{argv[0], argv[2], const_cast<char*>("-f"), const_cast<char*>("-s")};
  for (int i = 3; i < argc; ++i) args.push_back(argv[i]);
  return fuse_main(static_cast<int>(args.size()), args.data(), &ops, nullptr);
}
