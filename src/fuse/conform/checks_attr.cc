// Checks of attributes: chmod/chown, permission checks made as an unprivileged user (a child
// that switched to it), and the times: utimensat and what each call must update (check.h has
// the contract).
#include <fcntl.h>
#include <unistd.h>

#include "fuse/conform/check.h"

namespace ward::conform {
namespace {

// Skips the enclosing check when it cannot act as the unprivileged user here.
#define NEED_OTHER(c)                                  \
  do {                                                 \
    Outcome need_other_why_;                           \
    if (other_unavailable((c), need_other_why_)) return need_other_why_; \
  } while (0)

// As the unprivileged user, `call` must give `want` (0 or an errno).
#define AS_OTHER(c, want, call)                                                                     \
  do {                                                                                              \
    int as_r_ = as_other((c), [&] { return rc(call); });                                          \
    if (as_r_ != (want))                                                                            \
      return failed("as uid {}: {}: {}, want {}", (c).other_uid, #call,                             \
                    as_r_ == 0 ? "success" : as_r_ < 0 ? "the child failed" : errname(as_r_),       \
                    (want) == 0 ? "success" : errname(want));                                       \
  } while (0)

// ---- chmod / chown ----

Outcome chmod_basic(const Ctx& c) {
  STEP(put(c.p("f"), "x"));
  SYS(::chmod(c.p("f").c_str(), 0640));
  struct stat st = LSTAT(c.p("f"));
  WANT((st.st_mode & 07777) == 0640, "mode {:o} after chmod 640", st.st_mode & 07777);
  int fd = SYS(::open(c.p("f").c_str(), O_RDONLY));
  SYS(::fchmod(fd, 0604));
  st = LSTAT(c.p("f"));
  WANT((st.st_mode & 07777) == 0604, "mode {:o} after fchmod 604", st.st_mode & 07777);
  SYS(::mkdir(c.p("d").c_str(), 0755));
  SYS(::chmod(c.p("d").c_str(), 01777));
  st = LSTAT(c.p("d"));
  WANT((st.st_mode & 07777) == 01777 && S_ISDIR(st.st_mode), "directory mode {:o} after chmod 1777", st.st_mode);
  return pass();
}

Outcome chown_basic(const Ctx& c) {
  if (::geteuid() != 0) return skipped("needs root to give files away");
  STEP(put(c.p("f"), "x"));
  SYS(::chown(c.p("f").c_str(), c.other_uid, c.other_gid));
  struct stat st = LSTAT(c.p("f"));
  WANT(st.st_uid == c.other_uid && st.st_gid == c.other_gid, "owner {}:{} after chown {}:{}", st.st_uid, st.st_gid,
       c.other_uid, c.other_gid);
  SYS(::chown(c.p("f").c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(-1)));
  st = LSTAT(c.p("f"));
  WANT(st.st_uid == c.other_uid, "chown(-1, -1) changed the owner to {}", st.st_uid);
  SYS(::chown(c.p("f").c_str(), static_cast<uid_t>(-1), 0));
  st = LSTAT(c.p("f"));
  WANT(st.st_uid == c.other_uid && st.st_gid == 0, "changing only the group gave {}:{}", st.st_uid, st.st_gid);
  SYS(::symlink("f", c.p("s").c_str()));
  SYS(::lchown(c.p("s").c_str(), 0, c.other_gid));
  struct stat l = LSTAT(c.p("s"));
  st = LSTAT(c.p("f"));
  WANT(l.st_gid == c.other_gid && st.st_gid == 0, "lchown changed the target (gid {}) or not the link (gid {})",
       st.st_gid, l.st_gid);
  return pass();
}

// chown by root and a write by someone else clear the set-user-id bit.
Outcome suid_cleared(const Ctx& c) {
  NEED_OTHER(c);
  STEP(put(c.p("f"), "x", 0755));
  SYS(::chmod(c.p("f").c_str(), 04755));
  SYS(::chown(c.p("f").c_str(), c.other_uid, c.other_gid));
  struct stat st = LSTAT(c.p("f"));
  WANT(!(st.st_mode & S_ISUID), "chown left the set-user-id bit: mode {:o}", st.st_mode & 07777);
  STEP(put(c.p("g"), "x", 0777));
  SYS(::chmod(c.p("g").c_str(), 04777));
  const std::string g = c.p("g");
  AS_OTHER(c, 0, ([&] {
             int fd = ::open(g.c_str(), O_WRONLY);
             return fd < 0 ? -1 : static_cast<int>(::write(fd, "y", 1) == 1 ? 0 : -1);
           })());
  st = LSTAT(c.p("g"));
  WANT(!(st.st_mode & S_ISUID), "a write by another user left the set-user-id bit: mode {:o}", st.st_mode & 07777);
  return pass();
}

// ---- permission checks, as the unprivileged user ----

Outcome perm_file(const Ctx& c) {
  NEED_OTHER(c);
  const std::string f = c.p("f");
  STEP(put(f, "secret", 0600));
  AS_OTHER(c, EACCES, ::open(f.c_str(), O_RDONLY));
  SYS(::chmod(f.c_str(), 0604));
  AS_OTHER(c, 0, ::open(f.c_str(), O_RDONLY));
  AS_OTHER(c, EACCES, ::open(f.c_str(), O_WRONLY));
  AS_OTHER(c, EACCES, ::open(f.c_str(), O_RDONLY | O_TRUNC));
  AS_OTHER(c, EACCES, ::truncate(f.c_str(), 0));
  AS_OTHER(c, 0, ::access(f.c_str(), R_OK));
  AS_OTHER(c, EACCES, ::access(f.c_str(), W_OK));
  AS_OTHER(c, EPERM, ::chmod(f.c_str(), 0666));
  AS_OTHER(c, EPERM, ::chown(f.c_str(), c.other_uid, c.other_gid));
  bool ok;
  std::string s = get(f, ok);
  WANT(ok && s == "secret", "the file changed: '{}'", s);
  return pass();
}

Outcome perm_dir(const Ctx& c) {
  NEED_OTHER(c);
  const std::string d = c.p("d"), f = c.p("d/f");
  SYS(::mkdir(d.c_str(), 0755));
  STEP(put(f, "x", 0666));
  SYS(::chmod(f.c_str(), 0666));  // past the umask
  AS_OTHER(c, EACCES, ::open(c.p("d/new").c_str(), O_CREAT | O_WRONLY, 0644));
  AS_OTHER(c, EACCES, ::unlink(f.c_str()));
  AS_OTHER(c, EACCES, ::rename(f.c_str(), c.p("d/g").c_str()));
  AS_OTHER(c, EACCES, ::mkdir(c.p("d/sub").c_str(), 0755));
  AS_OTHER(c, EACCES, ::symlink("f", c.p("d/s").c_str()));
  AS_OTHER(c, 0, ::open(f.c_str(), O_WRONLY));  // the file's own mode lets anyone write it
  SYS(::chmod(d.c_str(), 0700));
  struct stat st;
  AS_OTHER(c, EACCES, ::stat(f.c_str(), &st));
  AS_OTHER(c, EACCES, ::open(d.c_str(), O_RDONLY | O_DIRECTORY));
  SYS(::chmod(d.c_str(), 0701));  // search without read: names known work, listing does not
  AS_OTHER(c, 0, ::stat(f.c_str(), &st));
  AS_OTHER(c, EACCES, ::open(d.c_str(), O_RDONLY | O_DIRECTORY));
  return pass();
}

Outcome perm_owner(const Ctx& c) {
  NEED_OTHER(c);
  const std::string f = c.p("f");
  STEP(put(f, "x", 0600));
  SYS(::chown(f.c_str(), c.other_uid, c.other_gid));
  AS_OTHER(c, 0, ::open(f.c_str(), O_RDWR));
  AS_OTHER(c, 0, ::chmod(f.c_str(), 0644));
  AS_OTHER(c, EPERM, ::chown(f.c_str(), 0, static_cast<gid_t>(-1)));
  AS_OTHER(c, EPERM, ::chown(f.c_str(), static_cast<uid_t>(-1), 0));  // a group it is not in
  // Files the user makes are its own (the FS must take the caller's ids, not its own).
  const std::string n = c.p("mine");
  AS_OTHER(c, 0, ::open(n.c_str(), O_CREAT | O_WRONLY, 0644));
  AS_OTHER(c, 0, ::mkdir(c.p("mydir").c_str(), 0755));
  AS_OTHER(c, 0, ::symlink("mine", c.p("mylink").c_str()));
  for (const char* name : {"mine", "mydir", "mylink"}) {
    struct stat st = LSTAT(c.p(name));
    WANT(st.st_uid == c.other_uid && st.st_gid == c.other_gid, "{} made by uid {} is owned by {}:{}", name,
         c.other_uid, st.st_uid, st.st_gid);
  }
  return pass();
}

Outcome perm_sticky(const Ctx& c) {
  NEED_OTHER(c);
  const std::string d = c.p("d");
  SYS(::mkdir(d.c_str(), 0777));
  SYS(::chmod(d.c_str(), 01777));
  STEP(put(c.p("d/root"), "x", 0666));
  AS_OTHER(c, EPERM, ::unlink(c.p("d/root").c_str()));
  AS_OTHER(c, EPERM, ::rename(c.p("d/root").c_str(), c.p("d/moved").c_str()));
  AS_OTHER(c, 0, ::open(c.p("d/mine").c_str(), O_CREAT | O_WRONLY, 0644));
  AS_OTHER(c, 0, ::rename(c.p("d/mine").c_str(), c.p("d/mine2").c_str()));
  AS_OTHER(c, 0, ::unlink(c.p("d/mine2").c_str()));
  return pass();
}

Outcome perm_utimens(const Ctx& c) {
  NEED_OTHER(c);
  const std::string f = c.p("f"), g = c.p("g");
  STEP(put(f, "x", 0666));
  SYS(::chmod(f.c_str(), 0666));
  STEP(put(g, "x", 0644));
  // UTIME_NOW needs write permission; explicit times need ownership.
  AS_OTHER(c, 0, ::utimensat(AT_FDCWD, f.c_str(), nullptr, 0));
  AS_OTHER(c, EPERM, set_times(f, ts(1'000'000'000), ts(1'000'000'000)));
  AS_OTHER(c, EACCES, ::utimensat(AT_FDCWD, g.c_str(), nullptr, 0));
  return pass();
}

// ---- times ----

Outcome utimens_explicit(const Ctx& c) {
  STEP(put(c.p("f"), "x"));
  const timespec a = ts(1'000'000'000, 123'456'789), m = ts(1'100'000'000, 987'654'321);
  SYS(set_times(c.p("f"), a, m));
  struct stat st = LSTAT(c.p("f"));
  WANT(cmp(st.st_atim, a) == 0 && cmp(st.st_mtim, m) == 0, "atime {} mtime {}, want {} and {}", show(st.st_atim),
       show(st.st_mtim), show(a), show(m));
  // mtime before atime, and past 2038 (64-bit times).
  const timespec late = ts(2'200'000'000, 5);
  SYS(set_times(c.p("f"), late, a));
  st = LSTAT(c.p("f"));
  WANT(cmp(st.st_atim, late) == 0 && cmp(st.st_mtim, a) == 0, "atime {} mtime {}, want {} and {}", show(st.st_atim),
       show(st.st_mtim), show(late), show(a));
  return pass();
}

Outcome utimens_now_omit(const Ctx& c) {
  STEP(put(c.p("f"), "x"));
  const timespec a = ts(1'000'000'000), m = ts(1'100'000'000);
  SYS(set_times(c.p("f"), a, m));
  SYS(set_times(c.p("f"), ts(0, UTIME_OMIT), ts(1'200'000'000)));
  struct stat st = LSTAT(c.p("f"));
  WANT(cmp(st.st_atim, a) == 0 && st.st_mtim.tv_sec == 1'200'000'000, "UTIME_OMIT for atime: atime {} mtime {}",
       show(st.st_atim), show(st.st_mtim));
  SYS(set_times(c.p("f"), ts(1'300'000'000), ts(0, UTIME_OMIT)));
  st = LSTAT(c.p("f"));
  WANT(st.st_atim.tv_sec == 1'300'000'000 && st.st_mtim.tv_sec == 1'200'000'000,
       "UTIME_OMIT for mtime: atime {} mtime {}", show(st.st_atim), show(st.st_mtim));
  SYS(set_times(c.p("f"), ts(0, UTIME_OMIT), ts(0, UTIME_OMIT)));
  st = LSTAT(c.p("f"));
  WANT(st.st_atim.tv_sec == 1'300'000'000 && st.st_mtim.tv_sec == 1'200'000'000, "UTIME_OMIT for both changed times");
  const timespec before = now();
  SYS(set_times(c.p("f"), ts(0, UTIME_NOW), ts(0, UTIME_NOW)));
  const timespec after = now();
  st = LSTAT(c.p("f"));
  // The file clock is coarse (a tick behind the precise one): a second of slack either way.
  auto near = [&](const timespec& t) { return t.tv_sec >= before.tv_sec - 1 && t.tv_sec <= after.tv_sec + 1; };
  WANT(near(st.st_atim) && near(st.st_mtim), "UTIME_NOW gave atime {} mtime {}, now is {}", show(st.st_atim),
       show(st.st_mtim), show(after));
  return pass();
}

Outcome utimens_symlink(const Ctx& c) {
  STEP(put(c.p("f"), "x"));
  SYS(::symlink("f", c.p("s").c_str()));
  SYS(set_times(c.p("f"), ts(1'000'000'000), ts(1'000'000'000)));
  SYS(set_times(c.p("s"), ts(1'100'000'000), ts(1'100'000'000), true));
  struct stat l = LSTAT(c.p("s")), f = LSTAT(c.p("f"));
  WANT(l.st_mtim.tv_sec == 1'100'000'000 && f.st_mtim.tv_sec == 1'000'000'000,
       "AT_SYMLINK_NOFOLLOW: link mtime {} target mtime {}", show(l.st_mtim), show(f.st_mtim));
  SYS(set_times(c.p("s"), ts(1'200'000'000), ts(1'200'000'000)));
  f = LSTAT(c.p("f"));
  WANT(f.st_mtim.tv_sec == 1'200'000'000, "following the link, the target's mtime is {}", show(f.st_mtim));
  return pass();
}

// What an operation must update: the file's or directory's mtime (set to the past first, so
// any update shows) and ctime (which cannot be set: a tick passes before the operation).
struct Updates {
  const char* what;
  const char* target;  // whose times: "f" or "." (the check's directory)
  bool mtime, ctime;   // must change (true) or must stay (false)
  int (*op)(const Ctx&);
};

Outcome times_updated(const Ctx& c, const Updates& u) {
  STEP(put(c.p("f"), "abc"));
  const std::string t = c.p(u.target);
  const timespec past = ts(1'000'000'000);
  SYS(set_times(t, past, past));
  struct stat before = LSTAT(t);
  tick();
  if (u.op(c) != 0) return failed("{}: {}", u.what, errname(errno));
  struct stat after = LSTAT(u.target == std::string_view("f") && ::access(t.c_str(), F_OK) != 0 ? c.p("g") : t);
  bool m = cmp(after.st_mtim, past) != 0, ct = cmp(after.st_ctim, before.st_ctim) > 0;
  WANT(m == u.mtime, "{} {} mtime (now {})", u.what, u.mtime ? "did not update" : "changed", show(after.st_mtim));
  WANT(ct == u.ctime, "{} {} ctime (was {}, now {})", u.what, u.ctime ? "did not update" : "changed",
       show(before.st_ctim), show(after.st_ctim));
  return pass();
}

const Updates kUpdates[] = {
    {"write", "f", true, true, [](const Ctx& c) {
       int fd = ::open(c.p("f").c_str(), O_WRONLY);
       return fd < 0 ? -1 : static_cast<int>(::write(fd, "x", 1) == 1 ? 0 : -1);
     }},
    {"truncate", "f", true, true, [](const Ctx& c) { return ::truncate(c.p("f").c_str(), 1); }},
    {"chmod", "f", false, true, [](const Ctx& c) { return ::chmod(c.p("f").c_str(), 0600); }},
    {"link", "f", false, true, [](const Ctx& c) { return ::link(c.p("f").c_str(), c.p("h").c_str()); }},
    {"rename", "f", false, true, [](const Ctx& c) { return ::rename(c.p("f").c_str(), c.p("g").c_str()); }},
    {"read", "f", false, false, [](const Ctx& c) {
       bool ok;
       (void)get(c.p("f"), ok);
       return ok ? 0 : -1;
     }},
    {"create in a directory", ".", true, true, [](const Ctx& c) {
       return ::open(c.p("new").c_str(), O_CREAT | O_WRONLY, 0644) < 0 ? -1 : 0;
     }},
    {"unlink in a directory", ".", true, true, [](const Ctx& c) { return ::unlink(c.p("f").c_str()); }},
    {"rename in a directory", ".", true, true, [](const Ctx& c) { return ::rename(c.p("f").c_str(), c.p("g").c_str()); }},
};

Outcome times_write(const Ctx& c) { return times_updated(c, kUpdates[0]); }
Outcome times_truncate(const Ctx& c) { return times_updated(c, kUpdates[1]); }
Outcome times_chmod(const Ctx& c) { return times_updated(c, kUpdates[2]); }
Outcome times_link(const Ctx& c) { return times_updated(c, kUpdates[3]); }
Outcome times_rename(const Ctx& c) { return times_updated(c, kUpdates[4]); }
Outcome times_read(const Ctx& c) { return times_updated(c, kUpdates[5]); }
Outcome times_dir_create(const Ctx& c) { return times_updated(c, kUpdates[6]); }
Outcome times_dir_unlink(const Ctx& c) { return times_updated(c, kUpdates[7]); }
Outcome times_dir_rename(const Ctx& c) { return times_updated(c, kUpdates[8]); }

constexpr Check kChecks[] = {
    {"chmod.basic", "chmod and fchmod set the mode bits, sticky bit on a directory", chmod_basic},
    {"chown.basic", "chown sets owner and group; -1 keeps; lchown changes the link only", chown_basic},
    {"perm.suid_cleared", "chown, and a write by another user, clear the set-user-id bit", suid_cleared},
    {"perm.file", "as another user: read/write/truncate/access by mode; chmod/chown EPERM", perm_file},
    {"perm.dir", "as another user: no create/unlink/rename in a 0755 dir; search vs read bits", perm_dir},
    {"perm.owner", "as the owner: read/write/chmod; no chown away; new files are the caller's", perm_owner},
    {"perm.sticky", "sticky directory: others' files cannot be removed or renamed, one's own can", perm_sticky},
    {"perm.utimens", "UTIME_NOW needs write permission, explicit times ownership", perm_utimens},
    {"time.utimens_explicit", "explicit atime/mtime to the nanosecond; mtime < atime; past 2038", utimens_explicit},
    {"time.utimens_now_omit", "UTIME_OMIT keeps a time, UTIME_NOW sets it to now", utimens_now_omit},
    {"time.utimens_symlink", "AT_SYMLINK_NOFOLLOW sets the link's times, not the target's", utimens_symlink},
    {"time.write", "write updates mtime and ctime", times_write},
    {"time.truncate", "truncate updates mtime and ctime", times_truncate},
    {"time.chmod", "chmod updates ctime, not mtime", times_chmod},
    {"time.link", "link updates the file's ctime", times_link},
    {"time.rename", "rename updates the file's ctime", times_rename},
    {"time.read", "read changes neither mtime nor ctime", times_read},
    {"time.dir_create", "creating a file updates the directory's mtime and ctime", times_dir_create},
    {"time.dir_unlink", "unlinking a file updates the directory's mtime and ctime", times_dir_unlink},
    {"time.dir_rename", "renaming within a directory updates its mtime and ctime", times_dir_rename},
};

}  // namespace

std::span<const Check> attr_checks() { return kChecks; }

}  // namespace ward::conform
