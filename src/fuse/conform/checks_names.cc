// Checks of the name space: open(2)'s flags, errno cases, names and their limits, mkdir/rmdir,
// link counts, hard and symbolic links, rename, unlink (check.h has the contract).
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>

#include "fuse/conform/check.h"

namespace ward::conform {
namespace {

// ---- open(2) ----

Outcome open_creat(const Ctx& c) {
  ::umask(022);
  int fd = SYS(::open(c.p("f").c_str(), O_CREAT | O_WRONLY, 0666));
  struct stat st;
  SYS(::fstat(fd, &st));
  WANT(S_ISREG(st.st_mode), "created a non-regular file: mode {:o}", st.st_mode);
  WANT((st.st_mode & 07777) == 0644, "mode {:o}, want 644 (0666 less umask 022)", st.st_mode & 07777);
  WANT(st.st_size == 0 && st.st_nlink == 1, "size {} nlink {}, want 0 and 1", st.st_size, st.st_nlink);
  WANT(st.st_uid == ::geteuid(), "owner {}, want the creator {}", st.st_uid, ::geteuid());
  ::close(fd);
  STEP(put(c.p("g"), "abc"));
  fd = SYS(::open(c.p("g").c_str(), O_CREAT | O_WRONLY, 0600));
  SYS(::fstat(fd, &st));
  WANT(st.st_size == 3, "O_CREAT without O_TRUNC on an existing file: size {}, want 3", st.st_size);
  WANT((st.st_mode & 0777) == 0644, "O_CREAT on an existing file changed its mode to {:o}", st.st_mode & 0777);
  return pass();
}

Outcome open_excl(const Ctx& c) {
  STEP(put(c.p("f"), "x"));
  WANT_ERRNO(::open(c.p("f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
  SYS(::symlink("nowhere", c.p("s").c_str()));
  WANT_ERRNO(::open(c.p("s").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
  WANT_ERRNO(::access(c.p("nowhere").c_str(), F_OK), ENOENT);
  SYS(::mkdir(c.p("d").c_str(), 0755));
  WANT_ERRNO(::open(c.p("d").c_str(), O_CREAT | O_EXCL | O_RDONLY, 0644), EEXIST);
  SYS(::open(c.p("new").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644));
  return pass();
}

Outcome open_trunc(const Ctx& c) {
  STEP(put(c.p("f"), "hello"));
  SYS(set_times(c.p("f"), ts(1'000'000'000), ts(1'000'000'000)));
  int fd = SYS(::open(c.p("f").c_str(), O_WRONLY | O_TRUNC));
  struct stat st;
  SYS(::fstat(fd, &st));
  WANT(st.st_size == 0, "size {} after O_TRUNC, want 0", st.st_size);
  WANT(st.st_mtim.tv_sec > 1'000'000'000, "O_TRUNC left mtime at {}", show(st.st_mtim));
  ::close(fd);
  bool ok;
  std::string s = get(c.p("f"), ok);
  WANT(ok && s.empty(), "read after O_TRUNC: '{}'", s);
  return pass();
}

Outcome open_append(const Ctx& c) {
  STEP(put(c.p("f"), "abc"));
  int a = SYS(::open(c.p("f").c_str(), O_WRONLY | O_APPEND));
  SYS(::lseek(a, 0, SEEK_SET));
  SYS(::write(a, "de", 2));
  // Another descriptor extends the file; the next append must land after that, not at the
  // size the appending descriptor last saw.
  int b = SYS(::open(c.p("f").c_str(), O_WRONLY));
  SYS(::pwrite(b, "123", 3, 5));
  SYS(::write(a, "Z", 1));
  off_t pos = SYS(::lseek(a, 0, SEEK_CUR));
  bool ok;
  std::string s = get(c.p("f"), ok);
  WANT(ok && s == "abcde123Z", "content '{}', want 'abcde123Z'", s);
  WANT(pos == 9, "offset after the append {}, want 9", pos);
  return pass();
}

Outcome open_directory(const Ctx& c) {
  STEP(put(c.p("f"), "x"));
  SYS(::mkdir(c.p("d").c_str(), 0755));
  WANT_ERRNO(::open(c.p("f").c_str(), O_RDONLY | O_DIRECTORY), ENOTDIR);
  SYS(::open(c.p("d").c_str(), O_RDONLY | O_DIRECTORY));
  SYS(::symlink("d", c.p("s").c_str()));
  SYS(::open(c.p("s").c_str(), O_RDONLY | O_DIRECTORY));
  return pass();
}

Outcome open_nofollow(const Ctx& c) {
  STEP(put(c.p("f"), "x"));
  SYS(::symlink("f", c.p("s").c_str()));
  WANT_ERRNO(::open(c.p("s").c_str(), O_RDONLY | O_NOFOLLOW), ELOOP);
  WANT_ERRNO(::open(c.p("s").c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW, 0644), ELOOP);
  SYS(::open(c.p("f").c_str(), O_RDONLY | O_NOFOLLOW));
  return pass();
}

Outcome open_eisdir(const Ctx& c) {
  SYS(::mkdir(c.p("d").c_str(), 0755));
  WANT_ERRNO(::open(c.p("d").c_str(), O_WRONLY), EISDIR);
  WANT_ERRNO(::open(c.p("d").c_str(), O_RDWR), EISDIR);
  WANT_ERRNO(::open(c.p("d").c_str(), O_WRONLY | O_CREAT, 0644), EISDIR);
  int fd = SYS(::open(c.p("d").c_str(), O_RDONLY));
  char b[8];
  WANT_ERRNO(::read(fd, b, sizeof b), EISDIR);
  return pass();
}

Outcome open_enoent(const Ctx& c) {
  WANT_ERRNO(::open(c.p("missing").c_str(), O_RDONLY), ENOENT);
  WANT_ERRNO(::open(c.p("missing/f").c_str(), O_CREAT | O_WRONLY, 0644), ENOENT);
  struct stat st;
  WANT_ERRNO(::stat(c.p("missing").c_str(), &st), ENOENT);
  WANT_ERRNO(::unlink(c.p("missing").c_str()), ENOENT);
  WANT_ERRNO(::rmdir(c.p("missing").c_str()), ENOENT);
  WANT_ERRNO(::mkdir(c.p("missing/d").c_str(), 0755), ENOENT);
  WANT_ERRNO(::link(c.p("missing").c_str(), c.p("l").c_str()), ENOENT);
  WANT_ERRNO(::rename(c.p("missing").c_str(), c.p("r").c_str()), ENOENT);
  WANT_ERRNO(::chmod(c.p("missing").c_str(), 0644), ENOENT);
  return pass();
}

Outcome open_enotdir(const Ctx& c) {
  STEP(put(c.p("f"), "x"));
  struct stat st;
  WANT_ERRNO(::open(c.p("f/x").c_str(), O_RDONLY), ENOTDIR);
  WANT_ERRNO(::open(c.p("f/x").c_str(), O_CREAT | O_WRONLY, 0644), ENOTDIR);
  WANT_ERRNO(::stat(c.p("f/").c_str(), &st), ENOTDIR);
  WANT_ERRNO(::mkdir(c.p("f/d").c_str(), 0755), ENOTDIR);
  WANT_ERRNO(::unlink(c.p("f/x").c_str()), ENOTDIR);
  WANT_ERRNO(::rmdir(c.p("f").c_str()), ENOTDIR);
  WANT_ERRNO(::symlink("t", c.p("f/s").c_str()), ENOTDIR);
  WANT_ERRNO(::rename(c.p("f").c_str(), c.p("f/x").c_str()), ENOTDIR);
  return pass();
}

Outcome open_mode_0000(const Ctx& c) {
  int fd = SYS(::open(c.p("f").c_str(), O_CREAT | O_WRONLY, 0));
  struct stat st;
  SYS(::fstat(fd, &st));
  WANT((st.st_mode & 07777) == 0, "mode {:o}, want 0", st.st_mode & 07777);
  SYS(::write(fd, "x", 1));  // the creating descriptor may write whatever the mode says
  if (::geteuid() == 0) SYS(::open(c.p("f").c_str(), O_RDWR));  // root is not bound by modes
  return pass();
}

// ---- names ----

// The file system's own name limit (pathconf), which POSIX lets be below 255.
long name_max(const Ctx& c) {
  long n = ::pathconf(c.dir.c_str(), _PC_NAME_MAX);
  return n > 0 ? n : NAME_MAX;
}

Outcome names_name_max(const Ctx& c) {
  const auto max = static_cast<std::size_t>(name_max(c));
  std::string longest(max, 'n');
  STEP(put(c.p(longest), "x"));
  bool found = false;
  DIR* d = ::opendir(c.dir.c_str());
  WANT(d != nullptr, "opendir: {}", errname(errno));
  while (auto* e = ::readdir(d)) found = found || e->d_name == longest;
  ::closedir(d);
  WANT(found, "a {}-byte name (the NAME_MAX pathconf gives) is not listed by readdir", max);
  SYS(::rename(c.p(longest).c_str(), c.p(std::string(max, 'm')).c_str()));
  SYS(::unlink(c.p(std::string(max, 'm')).c_str()));
  return pass();
}

Outcome names_enametoolong(const Ctx& c) {
  std::string over(static_cast<std::size_t>(name_max(c)) + 1, 'n');
  STEP(put(c.p("f"), "x"));
  WANT_ERRNO(::open(c.p(over).c_str(), O_CREAT | O_WRONLY, 0644), ENAMETOOLONG);
  WANT_ERRNO(::mkdir(c.p(over).c_str(), 0755), ENAMETOOLONG);
  WANT_ERRNO(::symlink("f", c.p(over).c_str()), ENAMETOOLONG);
  WANT_ERRNO(::link(c.p("f").c_str(), c.p(over).c_str()), ENAMETOOLONG);
  WANT_ERRNO(::rename(c.p("f").c_str(), c.p(over).c_str()), ENAMETOOLONG);
  WANT_ERRNO(::unlink(c.p(over).c_str()), ENAMETOOLONG);
  std::string longpath = c.dir;
  while (longpath.size() <= PATH_MAX) longpath += "/" + std::string(100, 'p');
  WANT_ERRNO(::open(longpath.c_str(), O_RDONLY), ENAMETOOLONG);
  return pass();
}

Outcome names_eloop(const Ctx& c) {
  SYS(::symlink("b", c.p("a").c_str()));
  SYS(::symlink("a", c.p("b").c_str()));
  struct stat st;
  WANT_ERRNO(::open(c.p("a").c_str(), O_RDONLY), ELOOP);
  WANT_ERRNO(::stat(c.p("a").c_str(), &st), ELOOP);
  WANT_ERRNO(::open(c.p("a/x").c_str(), O_CREAT | O_WRONLY, 0644), ELOOP);
  SYS(::lstat(c.p("a").c_str(), &st));
  // A chain longer than the kernel follows (40) ends in ELOOP too; a short one resolves.
  STEP(put(c.p("f"), "x"));
  std::string prev = "f";
  for (int i = 0; i < 50; ++i) {
    std::string n = "c" + std::to_string(i);
    SYS(::symlink(prev.c_str(), c.p(n).c_str()));
    prev = n;
  }
  SYS(::stat(c.p("c4").c_str(), &st));
  WANT_ERRNO(::stat(c.p("c49").c_str(), &st), ELOOP);
  return pass();
}

Outcome names_dots(const Ctx& c) {
  SYS(::mkdir(c.p("d").c_str(), 0755));
  SYS(::mkdir(c.p("d/e").c_str(), 0755));
  struct stat d = LSTAT(c.p("d")), up, dot;
  SYS(::stat(c.p("d/e/..").c_str(), &up));
  SYS(::stat(c.p("d/.").c_str(), &dot));
  WANT(up.st_ino == d.st_ino && dot.st_ino == d.st_ino, "d/e/.. is inode {} and d/. {}, want d's {}", up.st_ino,
       dot.st_ino, d.st_ino);
  WANT_ERRNO(::rmdir(c.p("d/.").c_str()), EINVAL);
  WANT_ERRNO(::rename(c.p("d/.").c_str(), c.p("x").c_str()), EINVAL, EBUSY);
  SYS(::mkdir(c.p("t/").c_str(), 0755));  // a trailing slash names the directory made
  return pass();
}

// Bytes a relay must pass through untouched: spaces, a newline, UTF-8, a leading dash.
Outcome names_bytes(const Ctx& c) {
  const std::set<std::string> names{"with space", "new\nline", "\xc3\xa9t\xc3\xa9", "-dash", "a:b;c", "'\"*?[]"};
  for (auto& n : names) STEP(put(c.p(n), n));
  std::set<std::string> seen;
  DIR* d = ::opendir(c.dir.c_str());
  WANT(d != nullptr, "opendir: {}", errname(errno));
  while (auto* e = ::readdir(d))
    if (std::string_view(e->d_name) != "." && std::string_view(e->d_name) != "..") seen.insert(e->d_name);
  ::closedir(d);
  WANT(seen == names, "readdir lists {} names, not the {} created", seen.size(), names.size());
  for (auto& n : names) {
    bool ok;
    std::string s = get(c.p(n), ok);
    WANT(ok && s == n, "'{}' reads back '{}'", n, s);
    SYS(::unlink(c.p(n).c_str()));
  }
  return pass();
}

// ---- mkdir / rmdir ----

Outcome mkdir_basic(const Ctx& c) {
  ::umask(027);
  SYS(::mkdir(c.p("d").c_str(), 0777));
  struct stat st = LSTAT(c.p("d"));
  WANT(S_ISDIR(st.st_mode), "mode {:o} is not a directory", st.st_mode);
  WANT((st.st_mode & 07777) == 0750, "mode {:o}, want 750 (0777 less umask 027)", st.st_mode & 07777);
  WANT(st.st_uid == ::geteuid(), "owner {}, want {}", st.st_uid, ::geteuid());
  int n = 0;
  DIR* d = ::opendir(c.p("d").c_str());
  WANT(d != nullptr, "opendir: {}", errname(errno));
  while (::readdir(d)) ++n;
  ::closedir(d);
  WANT(n == 2, "a new directory lists {} entries, want 2 (. and ..)", n);
  return pass();
}

Outcome mkdir_eexist(const Ctx& c) {
  SYS(::mkdir(c.p("d").c_str(), 0755));
  STEP(put(c.p("f"), "x"));
  SYS(::symlink("nowhere", c.p("s").c_str()));
  WANT_ERRNO(::mkdir(c.p("d").c_str(), 0755), EEXIST);
  WANT_ERRNO(::mkdir(c.p("f").c_str(), 0755), EEXIST);
  WANT_ERRNO(::mkdir(c.p("s").c_str(), 0755), EEXIST);
  WANT_ERRNO(::symlink("x", c.p("f").c_str()), EEXIST);
  WANT_ERRNO(::link(c.p("f").c_str(), c.p("d").c_str()), EEXIST);
  return pass();
}

Outcome rmdir_basic(const Ctx& c) {
  SYS(::mkdir(c.p("d").c_str(), 0755));
  SYS(::rmdir(c.p("d").c_str()));
  struct stat st;
  WANT_ERRNO(::stat(c.p("d").c_str(), &st), ENOENT);
  WANT_ERRNO(::rmdir(c.p("d").c_str()), ENOENT);
  return pass();
}

Outcome rmdir_enotempty(const Ctx& c) {
  SYS(::mkdir(c.p("d").c_str(), 0755));
  STEP(put(c.p("d/f"), "x"));
  WANT_ERRNO(::rmdir(c.p("d").c_str()), ENOTEMPTY, EEXIST);
  SYS(::unlink(c.p("d/f").c_str()));
  SYS(::mkdir(c.p("d/e").c_str(), 0755));
  WANT_ERRNO(::rmdir(c.p("d").c_str()), ENOTEMPTY, EEXIST);
  SYS(::rmdir(c.p("d/e").c_str()));
  SYS(::rmdir(c.p("d").c_str()));
  return pass();
}

Outcome unlink_eisdir(const Ctx& c) {
  SYS(::mkdir(c.p("d").c_str(), 0755));
  WANT_ERRNO(::unlink(c.p("d").c_str()), EISDIR, EPERM);
  struct stat st = LSTAT(c.p("d"));
  WANT(S_ISDIR(st.st_mode), "the directory changed kind");
  return pass();
}

Outcome unlink_open_file(const Ctx& c) {
  STEP(put(c.p("f"), "data"));
  int fd = SYS(::open(c.p("f").c_str(), O_RDWR));
  SYS(::unlink(c.p("f").c_str()));
  struct stat st;
  WANT_ERRNO(::stat(c.p("f").c_str(), &st), ENOENT);
  SYS(::fstat(fd, &st));
  WANT(st.st_nlink == 0, "st_nlink {} of an unlinked open file, want 0", st.st_nlink);
  std::string s = pget(fd, 0, 16);
  WANT(s == "data", "an unlinked open file reads '{}', want 'data'", s);
  SYS(::pwrite(fd, "more", 4, 4));
  s = pget(fd, 0, 16);
  WANT(s == "datamore", "after writing, it reads '{}', want 'datamore'", s);
  DIR* d = ::opendir(c.dir.c_str());
  WANT(d != nullptr, "opendir: {}", errname(errno));
  while (auto* e = ::readdir(d)) WANT(std::string_view(e->d_name) != "f", "readdir still lists the unlinked file");
  ::closedir(d);
  ::close(fd);
  return pass();
}

Outcome unlink_symlink(const Ctx& c) {
  STEP(put(c.p("f"), "x"));
  SYS(::symlink("f", c.p("s").c_str()));
  SYS(::unlink(c.p("s").c_str()));
  struct stat st;
  WANT_ERRNO(::lstat(c.p("s").c_str(), &st), ENOENT);
  SYS(::stat(c.p("f").c_str(), &st));
  return pass();
}

// ---- link counts, hard links ----

Outcome nlink_file(const Ctx& c) {
  STEP(put(c.p("f"), "x"));
  int fd = SYS(::open(c.p("f").c_str(), O_RDONLY));
  auto n = [&](const char* when, nlink_t want) -> Outcome {
    struct stat a, b;
    if (::fstat(fd, &a) != 0 || ::lstat(c.p("f").c_str(), &b) != 0) return failed("stat {}: {}", when, errname(errno));
    if (a.st_nlink != want || b.st_nlink != want)
      return failed("st_nlink {} (fstat) {} (lstat) {}, want {}", a.st_nlink, b.st_nlink, when, want);
    return pass();
  };
  Outcome o;
  if ((o = n("after create", 1)).verdict != Verdict::pass) return o;
  SYS(::link(c.p("f").c_str(), c.p("g").c_str()));
  if ((o = n("after link", 2)).verdict != Verdict::pass) return o;
  SYS(::link(c.p("g").c_str(), c.p("h").c_str()));
  if ((o = n("after a second link", 3)).verdict != Verdict::pass) return o;
  SYS(::unlink(c.p("g").c_str()));
  if ((o = n("after unlink", 2)).verdict != Verdict::pass) return o;
  SYS(::rename(c.p("h").c_str(), c.p("f").c_str()));  // a link onto another link of the same file
  SYS(::unlink(c.p("h").c_str()));
  if ((o = n("after unlinking all but one", 1)).verdict != Verdict::pass) return o;
  return pass();
}

Outcome nlink_dir(const Ctx& c) {
  auto links = [](const std::string& p) {
    struct stat st{};
    return ::lstat(p.c_str(), &st) == 0 ? static_cast<long>(st.st_nlink) : -1L;
  };
  long top = links(c.dir);
  SYS(::mkdir(c.p("d").c_str(), 0755));
  WANT(links(c.p("d")) == 2, "a new directory has st_nlink {}, want 2", links(c.p("d")));
  WANT(links(c.dir) == top + 1, "mkdir left the parent at st_nlink {}, want {}", links(c.dir), top + 1);
  SYS(::mkdir(c.p("d/a").c_str(), 0755));
  SYS(::mkdir(c.p("d/b").c_str(), 0755));
  STEP(put(c.p("d/f"), "x"));
  WANT(links(c.p("d")) == 4, "with 2 subdirectories and a file, st_nlink {}, want 4", links(c.p("d")));
  SYS(::rmdir(c.p("d/a").c_str()));
  WANT(links(c.p("d")) == 3, "after rmdir, st_nlink {}, want 3", links(c.p("d")));
  SYS(::rename(c.p("d/b").c_str(), c.p("b").c_str()));
  WANT(links(c.p("d")) == 2, "after moving a subdirectory out, st_nlink {}, want 2", links(c.p("d")));
  WANT(links(c.dir) == top + 2, "after moving a subdirectory in, st_nlink {}, want {}", links(c.dir), top + 2);
  return pass();
}

Outcome link_basic(const Ctx& c) {
  STEP(put(c.p("f"), "abc"));
  SYS(::link(c.p("f").c_str(), c.p("g").c_str()));
  struct stat f = LSTAT(c.p("f")), g = LSTAT(c.p("g"));
  WANT(f.st_ino == g.st_ino && f.st_dev == g.st_dev, "the link is inode {}, the file {}", g.st_ino, f.st_ino);
  int fd = SYS(::open(c.p("g").c_str(), O_WRONLY | O_APPEND));
  SYS(::write(fd, "def", 3));
  ::close(fd);
  bool ok;
  std::string s = get(c.p("f"), ok);
  WANT(ok && s == "abcdef", "a write through the link reads back through the file as '{}'", s);
  SYS(::unlink(c.p("f").c_str()));
  s = get(c.p("g"), ok);
  WANT(ok && s == "abcdef", "after unlinking the file, the link reads '{}'", s);
  return pass();
}

Outcome link_errors(const Ctx& c) {
  SYS(::mkdir(c.p("d").c_str(), 0755));
  STEP(put(c.p("f"), "x"));
  STEP(put(c.p("g"), "y"));
  WANT_ERRNO(::link(c.p("d").c_str(), c.p("e").c_str()), EPERM);
  WANT_ERRNO(::link(c.p("f").c_str(), c.p("g").c_str()), EEXIST);
  WANT_ERRNO(::link(c.p("f").c_str(), c.p("missing/x").c_str()), ENOENT);
  return pass();
}

// ---- symbolic links ----

Outcome symlink_readlink(const Ctx& c) {
  const std::string target = "some/where/else";
  SYS(::symlink(target.c_str(), c.p("s").c_str()));
  struct stat st = LSTAT(c.p("s"));
  WANT(S_ISLNK(st.st_mode), "lstat mode {:o} is not a symbolic link", st.st_mode);
  WANT(st.st_size == static_cast<off_t>(target.size()), "st_size {}, want the target's length {}", st.st_size,
       target.size());
  char b[256];
  ssize_t n = SYS(::readlink(c.p("s").c_str(), b, sizeof b));
  WANT(std::string(b, static_cast<std::size_t>(n)) == target, "readlink '{}', want '{}'",
       std::string(b, static_cast<std::size_t>(n)), target);
  n = SYS(::readlink(c.p("s").c_str(), b, 4));
  WANT(n == 4 && std::string(b, 4) == "some", "readlink into 4 bytes returned {}", n);
  std::string big(1023, 't');
  SYS(::symlink(big.c_str(), c.p("long").c_str()));
  char lb[2048];
  n = SYS(::readlink(c.p("long").c_str(), lb, sizeof lb));
  WANT(n == 1023 && std::string(lb, 1023) == big, "a 1023-byte target reads back as {} bytes", n);
  STEP(put(c.p("f"), "x"));
  WANT_ERRNO(::readlink(c.p("f").c_str(), b, sizeof b), EINVAL);
  return pass();
}

Outcome symlink_follow(const Ctx& c) {
  STEP(put(c.p("f"), "abc"));
  SYS(::mkdir(c.p("d").c_str(), 0755));
  SYS(::symlink("f", c.p("s").c_str()));
  SYS(::symlink("../f", c.p("d/up").c_str()));
  SYS(::symlink("d", c.p("sd").c_str()));
  bool ok;
  std::string s = get(c.p("s"), ok);
  WANT(ok && s == "abc", "reading through a symbolic link: '{}'", s);
  s = get(c.p("sd/up"), ok);
  WANT(ok && s == "abc", "reading through two relative links: '{}'", s);
  // A dangling link: stat fails, lstat does not, and O_CREAT through it makes the target.
  SYS(::symlink("target", c.p("dangling").c_str()));
  struct stat st;
  WANT_ERRNO(::stat(c.p("dangling").c_str(), &st), ENOENT);
  SYS(::lstat(c.p("dangling").c_str(), &st));
  SYS(::open(c.p("dangling").c_str(), O_CREAT | O_WRONLY, 0644));
  SYS(::lstat(c.p("target").c_str(), &st));
  WANT(S_ISREG(st.st_mode), "O_CREAT through a dangling link made mode {:o}", st.st_mode);
  return pass();
}

// ---- rename ----

Outcome rename_file(const Ctx& c) {
  STEP(put(c.p("f"), "abc"));
  struct stat a = LSTAT(c.p("f"));
  SYS(::rename(c.p("f").c_str(), c.p("g").c_str()));
  struct stat st;
  WANT_ERRNO(::lstat(c.p("f").c_str(), &st), ENOENT);
  struct stat b = LSTAT(c.p("g"));
  WANT(a.st_ino == b.st_ino, "renamed file has inode {}, was {}", b.st_ino, a.st_ino);
  bool ok;
  std::string s = get(c.p("g"), ok);
  WANT(ok && s == "abc", "renamed file reads '{}'", s);
  return pass();
}

Outcome rename_over_file(const Ctx& c) {
  STEP(put(c.p("f"), "new"));
  STEP(put(c.p("g"), "old"));
  SYS(::link(c.p("g").c_str(), c.p("g2").c_str()));
  struct stat f = LSTAT(c.p("f"));
  SYS(::rename(c.p("f").c_str(), c.p("g").c_str()));
  struct stat g = LSTAT(c.p("g")), g2 = LSTAT(c.p("g2"));
  WANT(g.st_ino == f.st_ino, "the target is inode {}, want the source's {}", g.st_ino, f.st_ino);
  WANT(g2.st_nlink == 1, "the replaced file's other link has st_nlink {}, want 1", g2.st_nlink);
  bool ok;
  std::string s = get(c.p("g"), ok), s2 = get(c.p("g2"), ok);
  WANT(s == "new" && s2 == "old", "after replacing: target '{}', the old file's other link '{}'", s, s2);
  return pass();
}

Outcome rename_dirs(const Ctx& c) {
  SYS(::mkdir(c.p("d1").c_str(), 0755));
  STEP(put(c.p("d1/f"), "x"));
  SYS(::mkdir(c.p("empty").c_str(), 0755));
  SYS(::mkdir(c.p("full").c_str(), 0755));
  STEP(put(c.p("full/g"), "y"));
  WANT_ERRNO(::rename(c.p("d1").c_str(), c.p("full").c_str()), ENOTEMPTY, EEXIST);
  struct stat st;
  SYS(::lstat(c.p("d1/f").c_str(), &st));
  SYS(::lstat(c.p("full/g").c_str(), &st));
  SYS(::rename(c.p("d1").c_str(), c.p("empty").c_str()));
  WANT_ERRNO(::lstat(c.p("d1").c_str(), &st), ENOENT);
  SYS(::lstat(c.p("empty/f").c_str(), &st));
  STEP(put(c.p("file"), "z"));
  WANT_ERRNO(::rename(c.p("file").c_str(), c.p("full").c_str()), EISDIR);
  WANT_ERRNO(::rename(c.p("full").c_str(), c.p("file").c_str()), ENOTDIR);
  return pass();
}

Outcome rename_into_itself(const Ctx& c) {
  SYS(::mkdir(c.p("d").c_str(), 0755));
  SYS(::mkdir(c.p("d/sub").c_str(), 0755));
  WANT_ERRNO(::rename(c.p("d").c_str(), c.p("d/x").c_str()), EINVAL);
  WANT_ERRNO(::rename(c.p("d").c_str(), c.p("d/sub/x").c_str()), EINVAL);
  struct stat st;
  SYS(::lstat(c.p("d/sub").c_str(), &st));
  return pass();
}

Outcome rename_self(const Ctx& c) {
  STEP(put(c.p("f"), "abc"));
  SYS(::rename(c.p("f").c_str(), c.p("f").c_str()));
  SYS(::link(c.p("f").c_str(), c.p("g").c_str()));
  // Two links to one file: POSIX says rename does nothing and succeeds.
  SYS(::rename(c.p("f").c_str(), c.p("g").c_str()));
  struct stat st;
  SYS(::lstat(c.p("f").c_str(), &st));
  SYS(::lstat(c.p("g").c_str(), &st));
  SYS(::mkdir(c.p("d").c_str(), 0755));
  SYS(::rename(c.p("d").c_str(), c.p("d").c_str()));
  bool ok;
  std::string s = get(c.p("f"), ok);
  WANT(ok && s == "abc", "after renaming to itself, reads '{}'", s);
  return pass();
}

Outcome rename_dir_parent(const Ctx& c) {
  SYS(::mkdir(c.p("a").c_str(), 0755));
  SYS(::mkdir(c.p("b").c_str(), 0755));
  SYS(::mkdir(c.p("a/sub").c_str(), 0755));
  SYS(::rename(c.p("a/sub").c_str(), c.p("b/sub").c_str()));
  struct stat b = LSTAT(c.p("b")), up;
  SYS(::stat(c.p("b/sub/..").c_str(), &up));
  WANT(up.st_ino == b.st_ino, "after the move, sub/.. is inode {}, want the new parent's {}", up.st_ino, b.st_ino);
  return pass();
}

Outcome rename_no_exdev(const Ctx& c) {
  SYS(::mkdir(c.p("a").c_str(), 0755));
  SYS(::mkdir(c.p("b").c_str(), 0755));
  SYS(::mkdir(c.p("b/c").c_str(), 0755));
  STEP(put(c.p("a/f"), "x"));
  SYS(::rename(c.p("a/f").c_str(), c.p("b/c/f").c_str()));
  SYS(::link(c.p("b/c/f").c_str(), c.p("a/g").c_str()));
  SYS(::rename(c.p("b/c").c_str(), c.p("a/c").c_str()));
  return pass();
}

Outcome rename_open_file(const Ctx& c) {
  STEP(put(c.p("f"), "abc"));
  int fd = SYS(::open(c.p("f").c_str(), O_RDWR));
  SYS(::rename(c.p("f").c_str(), c.p("g").c_str()));
  SYS(::pwrite(fd, "XYZ", 3, 3));
  ::close(fd);
  bool ok;
  std::string s = get(c.p("g"), ok);
  WANT(ok && s == "abcXYZ", "a write through a descriptor opened before the rename reads back '{}'", s);
  return pass();
}

// ---- special files ----

Outcome mkfifo_basic(const Ctx& c) {
  SYS(::mkfifo(c.p("p").c_str(), 0644));
  struct stat st = LSTAT(c.p("p"));
  WANT(S_ISFIFO(st.st_mode), "mkfifo made mode {:o}", st.st_mode);
  WANT_ERRNO(::mkfifo(c.p("p").c_str(), 0644), EEXIST);
  SYS(::unlink(c.p("p").c_str()));
  return pass();
}

constexpr Check kChecks[] = {
    {"open.creat", "O_CREAT makes a regular file (mode less umask, owner); without O_TRUNC keeps it", open_creat},
    {"open.excl", "O_CREAT|O_EXCL fails EEXIST on a file, a dangling symlink, a directory", open_excl},
    {"open.trunc", "O_TRUNC empties the file and updates mtime", open_trunc},
    {"open.append", "O_APPEND writes at the current end, also after another descriptor extended it", open_append},
    {"open.directory", "O_DIRECTORY: ENOTDIR on a file; works on a directory and a link to one", open_directory},
    {"open.nofollow", "O_NOFOLLOW on a symbolic link fails ELOOP", open_nofollow},
    {"open.eisdir", "opening a directory for writing fails EISDIR; read(2) on it EISDIR", open_eisdir},
    {"open.enoent", "ENOENT from open, stat, unlink, rmdir, mkdir, link, rename, chmod", open_enoent},
    {"open.enotdir", "ENOTDIR when a path prefix is a file", open_enotdir},
    {"open.mode_0000", "a file created with mode 0000 keeps it; its creating descriptor writes", open_mode_0000},
    {"names.name_max", "a name of NAME_MAX bytes (pathconf) is created, listed, renamed, removed", names_name_max},
    {"names.enametoolong", "a name over NAME_MAX (pathconf) or a path over PATH_MAX fails ENAMETOOLONG", names_enametoolong},
    {"names.eloop", "symbolic link loops and chains over 40 fail ELOOP", names_eloop},
    {"names.dots", ". and .. resolve; rmdir d/. fails EINVAL", names_dots},
    {"names.bytes", "names with spaces, newline, UTF-8, punctuation round-trip", names_bytes},
    {"mkdir.basic", "mkdir makes an empty directory, mode less umask, owned by the caller", mkdir_basic},
    {"mkdir.eexist", "mkdir, symlink, link onto an existing name fail EEXIST", mkdir_eexist},
    {"rmdir.basic", "rmdir removes an empty directory", rmdir_basic},
    {"rmdir.enotempty", "rmdir of a non-empty directory fails ENOTEMPTY (or EEXIST)", rmdir_enotempty},
    {"unlink.eisdir", "unlink of a directory fails EISDIR (or EPERM)", unlink_eisdir},
    {"unlink.open_file", "an unlinked open file stays readable and writable, st_nlink 0", unlink_open_file},
    {"unlink.symlink", "unlinking a symbolic link leaves its target", unlink_symlink},
    {"nlink.file", "st_nlink of a file follows link, unlink, rename", nlink_file},
    {"nlink.dir", "st_nlink of directories follows mkdir, rmdir, rename", nlink_dir},
    {"link.basic", "a hard link shares the inode and data; survives unlinking the original", link_basic},
    {"link.errors", "link: EPERM for a directory, EEXIST, ENOENT", link_errors},
    {"symlink.readlink", "lstat, st_size and readlink of symbolic links (also 1023-byte targets)", symlink_readlink},
    {"symlink.follow", "paths through symbolic links; dangling links; O_CREAT through one", symlink_follow},
    {"rename.file", "rename keeps the inode and content", rename_file},
    {"rename.over_file", "rename over an existing file replaces it; its other links keep the old data", rename_over_file},
    {"rename.dirs", "dir over empty dir works; over non-empty fails; file/dir mixes fail", rename_dirs},
    {"rename.into_itself", "renaming a directory into itself fails EINVAL", rename_into_itself},
    {"rename.self", "rename to itself, or to another link of the same file, succeeds and changes nothing", rename_self},
    {"rename.dir_parent", "a moved directory's .. is its new parent", rename_dir_parent},
    {"rename.no_exdev", "rename and link between directories of one file system work (no EXDEV)", rename_no_exdev},
    {"rename.open_file", "a descriptor opened before a rename writes to the renamed file", rename_open_file},
    {"mkfifo.basic", "mkfifo makes a FIFO; again fails EEXIST", mkfifo_basic},
};

}  // namespace

std::span<const Check> name_checks() { return kChecks; }

}  // namespace ward::conform
