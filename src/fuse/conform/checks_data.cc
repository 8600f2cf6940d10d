// Checks of file data and the calls around it: truncate, holes, offsets past 4 GiB, integrity
// through the page cache and around it, mmap, fsync, statfs, locks, extended attributes
// (check.h has the contract).
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>

#include "fuse/conform/check.h"

namespace ward::conform {
namespace {

// The first offset where `got` differs from `want`, for a reason that says where.
std::size_t first_diff(std::string_view got, std::string_view want) {
  std::size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return i;
}

// ---- truncate ----

Outcome truncate_extend(const Ctx& c) {
  STEP(put(c.p("f"), "abc"));
  SYS(::truncate(c.p("f").c_str(), 10000));
  bool ok;
  std::string s = get(c.p("f"), ok);
  WANT(ok && s.size() == 10000, "size {} after extending to 10000", s.size());
  WANT(s.substr(0, 3) == "abc", "extending changed the first bytes");
  WANT(zeros(s.substr(3)), "the extension is not zero-filled from byte {}",
       3 + first_diff(s.substr(3), std::string(s.size() - 3, '\0')));
  return pass();
}

Outcome truncate_shrink(const Ctx& c) {
  STEP(put(c.p("f"), std::string(8192, 'x')));
  SYS(::truncate(c.p("f").c_str(), 100));
  struct stat st = LSTAT(c.p("f"));
  WANT(st.st_size == 100, "size {} after shrinking to 100", st.st_size);
  // Growing again must not bring back the old bytes.
  SYS(::truncate(c.p("f").c_str(), 8192));
  bool ok;
  std::string s = get(c.p("f"), ok);
  WANT(ok && s.size() == 8192 && s.substr(0, 100) == std::string(100, 'x'), "content after shrink+extend is wrong");
  WANT(zeros(s.substr(100)), "bytes cut off by the shrink came back at {}",
       100 + first_diff(s.substr(100), std::string(8092, '\0')));
  return pass();
}

Outcome ftruncate_fd(const Ctx& c) {
  int fd = SYS(::open(c.p("f").c_str(), O_CREAT | O_RDWR, 0644));
  SYS(::write(fd, "hello world", 11));
  SYS(::ftruncate(fd, 5));
  std::string s = pget(fd, 0, 64);
  WANT(s == "hello", "after ftruncate(5) the same descriptor reads '{}'", s);
  SYS(::ftruncate(fd, 4096 * 3 + 1));
  s = pget(fd, 0, 1 << 16);
  WANT(s.size() == 4096 * 3 + 1 && s.substr(0, 5) == "hello" && zeros(s.substr(5)),
       "after ftruncate up, {} bytes read, not hello + zeros", s.size());
  int ro = SYS(::open(c.p("f").c_str(), O_RDONLY));
  WANT_ERRNO(::ftruncate(ro, 0), EINVAL, EBADF);
  WANT_ERRNO(::truncate(c.p("f").c_str(), -1), EINVAL);
  SYS(::mkdir(c.p("d").c_str(), 0755));
  WANT_ERRNO(::truncate(c.p("d").c_str(), 0), EISDIR);
  return pass();
}

// ---- holes and large offsets ----

Outcome sparse_hole(const Ctx& c) {
  int fd = SYS(::open(c.p("f").c_str(), O_CREAT | O_RDWR, 0644));
  const off_t at = (1 << 20) + 5;
  SYS(::pwrite(fd, "end", 3, at));
  struct stat st;
  SYS(::fstat(fd, &st));
  WANT(st.st_size == at + 3, "size {}, want {}", st.st_size, at + 3);
  ::close(fd);
  bool ok;
  std::string s = get(c.p("f"), ok);
  WANT(ok && s.size() == static_cast<std::size_t>(at + 3), "read {} bytes, want {}", s.size(), at + 3);
  WANT(zeros(s.substr(0, at)), "the hole is not zeros");
  WANT(s.substr(at) == "end", "the data after the hole reads '{}'", s.substr(at));
  // SEEK_DATA/SEEK_HOLE: whether holes are reported is up to the file system, but the answers
  // must stay within the file and find the data.
  fd = SYS(::open(c.p("f").c_str(), O_RDONLY));
  off_t data = ::lseek(fd, 0, SEEK_DATA);
  if (data == -1 && errno == EINVAL) return pass();  // SEEK_DATA not supported: allowed
  WANT(data >= 0 && data <= at, "lseek(SEEK_DATA, 0) = {} ({}), want <= {}", data, data < 0 ? errname(errno) : "", at);
  off_t hole = SYS(::lseek(fd, 0, SEEK_HOLE));
  WANT(hole <= at + 3, "lseek(SEEK_HOLE, 0) = {}, past the end {}", hole, at + 3);
  return pass();
}

Outcome sparse_large_offset(const Ctx& c) {
  int fd = SYS(::open(c.p("f").c_str(), O_CREAT | O_RDWR, 0644));
  const off_t four = off_t{4} << 30, at = (off_t{5} << 30) + 3;
  SYS(::pwrite(fd, "tail", 4, at));
  SYS(::pwrite(fd, "ABCD", 4, four - 2));  // across the 4 GiB line: 32-bit offsets break here
  struct stat st;
  SYS(::fstat(fd, &st));
  WANT(st.st_size == at + 4, "size {}, want {}", st.st_size, at + 4);
  off_t end = SYS(::lseek(fd, 0, SEEK_END));
  WANT(end == at + 4, "lseek(SEEK_END) = {}, want {}", end, at + 4);
  // Again from the file system rather than the page cache.
  SYS(::fsync(fd));
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  fd = SYS(::open(c.p("f").c_str(), O_RDONLY));
  std::string s = pget(fd, at, 16), mid = pget(fd, four - 2, 4), hole = pget(fd, four + 4096, 4096);
  WANT(s == "tail", "at 5 GiB + 3 reads '{}'", s);
  WANT(mid == "ABCD", "across 4 GiB reads '{}'", mid);
  WANT(hole.size() == 4096 && zeros(hole), "the hole past 4 GiB is not 4096 zeros");
  ::close(fd);
  SYS(::truncate(c.p("f").c_str(), 0));
  return pass();
}

// ---- data integrity ----

Outcome data_pattern(const Ctx& c) {
  const std::string want = pattern(3 << 20, 7);
  int fd = SYS(::open(c.p("f").c_str(), O_CREAT | O_WRONLY, 0644));
  for (std::size_t off = 0; off < want.size();) {
    ssize_t n = SYS(::write(fd, want.data() + off, std::min<std::size_t>(want.size() - off, 77'777)));
    WANT(n > 0, "write returned 0 at {}", off);
    off += static_cast<std::size_t>(n);
  }
  SYS(::fsync(fd));
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // read back from the file system
  ::close(fd);
  bool ok;
  std::string got = get(c.p("f"), ok);
  WANT(ok && got.size() == want.size(), "read back {} bytes of {}", got.size(), want.size());
  WANT(got == want, "3 MiB read back differ first at byte {}", first_diff(got, want));
  return pass();
}

Outcome data_overwrite(const Ctx& c) {
  std::string want(65536, 'a');
  STEP(put(c.p("f"), want));
  int fd = SYS(::open(c.p("f").c_str(), O_RDWR));
  std::string b(1000, 'b');
  SYS(::pwrite(fd, b.data(), b.size(), 4090));  // across a page boundary
  want.replace(4090, 1000, b);
  int other = SYS(::open(c.p("f").c_str(), O_RDONLY));
  std::string got = pget(other, 0, 1 << 17);
  WANT(got == want, "another descriptor reads {} bytes, first difference at {}", got.size(), first_diff(got, want));
  char x;
  ssize_t n = SYS(::pread(fd, &x, 1, 65536));
  WANT(n == 0, "pread at the end returned {}, want 0", n);
  n = SYS(::pread(fd, &x, 1, 1 << 20));
  WANT(n == 0, "pread past the end returned {}, want 0", n);
  return pass();
}

Outcome data_mmap(const Ctx& c) {
  int fd = SYS(::open(c.p("f").c_str(), O_CREAT | O_RDWR, 0644));
  SYS(::ftruncate(fd, 8192));
  void* m = ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED && errno == ENODEV) return skipped("no shared writable mmap here (direct I/O)");
  WANT(m != MAP_FAILED, "mmap: {}", errname(errno));
  const std::string want = pattern(8192, 3);
  std::memcpy(m, want.data(), want.size());
  SYS(::msync(m, 8192, MS_SYNC));
  ::munmap(m, 8192);
  ::close(fd);
  bool ok;
  std::string got = get(c.p("f"), ok);
  WANT(ok && got == want, "data stored through mmap reads back differently at byte {}", first_diff(got, want));
  return pass();
}

// ---- sync, statfs, locks ----

Outcome sync_calls(const Ctx& c) {
  int fd = SYS(::open(c.p("f").c_str(), O_CREAT | O_WRONLY, 0644));
  SYS(::write(fd, "x", 1));
  SYS(::fsync(fd));
  SYS(::fdatasync(fd));
  SYS(::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER));
  int d = SYS(::open(c.dir.c_str(), O_RDONLY | O_DIRECTORY));
  if (::fsync(d) != 0 && errno != EINVAL) return failed("fsync of a directory: {}", errname(errno));
  return pass();
}

Outcome statfs_sane(const Ctx& c) {
  struct statvfs a, b;
  SYS(::statvfs(c.dir.c_str(), &a));
  int fd = SYS(::open(c.dir.c_str(), O_RDONLY | O_DIRECTORY));
  SYS(::fstatvfs(fd, &b));
  WANT(a.f_bsize > 0 && a.f_frsize > 0, "f_bsize {} f_frsize {}", a.f_bsize, a.f_frsize);
  WANT(a.f_blocks >= a.f_bfree && a.f_bfree >= a.f_bavail, "blocks {} free {} avail {} out of order", a.f_blocks,
       a.f_bfree, a.f_bavail);
  WANT(a.f_files >= a.f_ffree, "files {} < free files {}", a.f_files, a.f_ffree);
  long pc = ::pathconf(c.dir.c_str(), _PC_NAME_MAX);
  WANT(a.f_namemax >= 14 && static_cast<long>(a.f_namemax) == pc, "f_namemax {}, pathconf's NAME_MAX {}, want equal and >= 14",
       a.f_namemax, pc);
  WANT(a.f_bsize == b.f_bsize && a.f_namemax == b.f_namemax && a.f_blocks == b.f_blocks,
       "statvfs and fstatvfs disagree");
  return pass();
}

Outcome lock_posix(const Ctx& c) {
  int fd = SYS(::open(c.p("f").c_str(), O_CREAT | O_RDWR, 0644));
  struct flock l{};
  l.l_type = F_WRLCK;
  l.l_whence = SEEK_SET;
  l.l_start = 0;
  l.l_len = 100;
  SYS(::fcntl(fd, F_SETLK, &l));
  int fl = SYS(::open(c.p("f").c_str(), O_RDWR));
  SYS(::flock(fl, LOCK_EX));
  pid_t me = ::getpid();
  // Another process sees both locks (a child's own open for flock).
  pid_t pid = ::fork();
  if (pid == 0) {
    struct flock m{};
    m.l_type = F_WRLCK;
    m.l_whence = SEEK_SET;
    m.l_start = 50;
    m.l_len = 10;
    if (::fcntl(fd, F_SETLK, &m) == 0 || (errno != EAGAIN && errno != EACCES)) ::_exit(1);
    m.l_type = F_WRLCK;
    if (::fcntl(fd, F_GETLK, &m) != 0 || m.l_type != F_WRLCK || m.l_pid != me) ::_exit(2);
    int o = ::open(c.p("f").c_str(), O_RDWR);
    if (o < 0 || ::flock(o, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK) ::_exit(3);
    m.l_start = 100;  // past the locked range
    if (::fcntl(fd, F_SETLK, &m) != 0) ::_exit(4);
    ::_exit(0);
  }
  int st = 0;
  SYS(::waitpid(pid, &st, 0));
  static const char* const why[] = {"", "a conflicting fcntl lock was granted",
                                    "F_GETLK did not report the holder", "a conflicting flock was granted",
                                    "a lock on a free range was refused"};
  int code = WIFEXITED(st) ? WEXITSTATUS(st) : 5;
  WANT(code == 0, "{}", code < 5 ? why[code] : "the locking child died");
  return pass();
}

// ---- extended attributes ----

Outcome xattr_user(const Ctx& c) {
  STEP(put(c.p("f"), "x"));
  const std::string f = c.p("f");
  const char* name = "user.ward.conform";
  if (::setxattr(f.c_str(), name, "value1", 6, 0) != 0) {
    if (errno == ENOTSUP) return skipped("user extended attributes are not supported (ENOTSUP)");
    return failed("setxattr: {}", errname(errno));
  }
  char b[64];
  ssize_t n = SYS(::getxattr(f.c_str(), name, b, sizeof b));
  WANT(std::string(b, static_cast<std::size_t>(n)) == "value1", "getxattr read '{}'",
       std::string(b, static_cast<std::size_t>(n)));
  n = SYS(::getxattr(f.c_str(), name, nullptr, 0));
  WANT(n == 6, "getxattr with size 0 gave {}, want the value's size 6", n);
  WANT_ERRNO(::getxattr(f.c_str(), name, b, 3), ERANGE);
  char list[4096];
  n = SYS(::listxattr(f.c_str(), list, sizeof list));
  bool listed = false;
  for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(std::strlen(list + i)) + 1)
    listed = listed || std::strcmp(list + i, name) == 0;
  WANT(listed, "listxattr does not list {}", name);
  WANT_ERRNO(::setxattr(f.c_str(), name, "v", 1, XATTR_CREATE), EEXIST);
  WANT_ERRNO(::setxattr(f.c_str(), "user.ward.none", "v", 1, XATTR_REPLACE), ENODATA);
  SYS(::setxattr(f.c_str(), name, "", 0, XATTR_REPLACE));
  n = SYS(::getxattr(f.c_str(), name, b, sizeof b));
  WANT(n == 0, "an empty value reads back as {} bytes", n);
  const std::string big = pattern(2000, 9);
  SYS(::setxattr(f.c_str(), "user.ward.big", big.data(), big.size(), 0));
  char bb[4096];
  n = SYS(::getxattr(f.c_str(), "user.ward.big", bb, sizeof bb));
  WANT(std::string(bb, static_cast<std::size_t>(n)) == big, "a 2000-byte value reads back as {} different bytes", n);
  SYS(::removexattr(f.c_str(), name));
  WANT_ERRNO(::getxattr(f.c_str(), name, b, sizeof b), ENODATA);
  WANT_ERRNO(::removexattr(f.c_str(), name), ENODATA);
  return pass();
}

constexpr Check kChecks[] = {
    {"truncate.extend", "truncate up zero-fills and keeps the old bytes", truncate_extend},
    {"truncate.shrink", "truncate down, then up: the cut bytes read as zeros", truncate_shrink},
    {"ftruncate.fd", "ftruncate down/up seen by the same descriptor; EINVAL read-only/negative; EISDIR", ftruncate_fd},
    {"sparse.hole", "a write past the end leaves a hole of zeros; SEEK_DATA/SEEK_HOLE stay sane", sparse_hole},
    {"sparse.large_offset", "writes at 5 GiB and across 4 GiB read back; the hole reads zeros", sparse_large_offset},
    {"data.pattern", "3 MiB in odd pieces, fsynced, read back from the FS, identical", data_pattern},
    {"data.overwrite", "an overwrite across a page boundary is seen by another descriptor; EOF reads 0", data_overwrite},
    {"data.mmap", "data stored through a shared mapping and msync reads back", data_mmap},
    {"sync.calls", "fsync, fdatasync, sync_file_range succeed; fsync of a directory", sync_calls},
    {"statfs.sane", "statvfs figures are ordered, agree with fstatvfs and pathconf", statfs_sane},
    {"lock.posix", "fcntl and flock locks conflict across processes; F_GETLK names the holder", lock_posix},
    {"xattr.user", "user.* attributes: set, get, size, list, CREATE/REPLACE, remove (ENOTSUP: skip)", xattr_user},
};

}  // namespace

std::span<const Check> data_checks() { return kChecks; }

}  // namespace ward::conform
