// Checks of directory listing: completeness with many entries, entry types and inode numbers,
// rewinddir, and the `rm -r` pattern of unlinking while reading (check.h has the contract).
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <set>

#include "fuse/conform/check.h"

namespace ward::conform {
namespace {

constexpr int kMany = 1000;

std::string nth(int i) { return fmt::format("entry-{:04}", i); }

// Creates kMany empty files; "" or the reason.
std::string make_many(const Ctx& c) {
  for (int i = 0; i < kMany; ++i) {
    int fd = ::open(c.p(nth(i)).c_str(), O_CREAT | O_WRONLY, 0644);
    if (fd < 0) return fmt::format("create {}: {}", nth(i), errname(errno));
    ::close(fd);
  }
  return "";
}

// Every name readdir returns (. and .. included), with how often it came.
std::map<std::string, int> listing(const std::string& dir, bool& ok) {
  std::map<std::string, int> seen;
  DIR* d = ::opendir(dir.c_str());
  ok = d != nullptr;
  if (!d) return seen;
  errno = 0;
  while (auto* e = ::readdir(d)) ++seen[e->d_name];
  ok = errno == 0;
  ::closedir(d);
  return seen;
}

Outcome readdir_many(const Ctx& c) {
  STEP(make_many(c));
  SYS(::mkdir(c.p("subdir").c_str(), 0755));
  bool ok;
  auto seen = listing(c.dir, ok);
  WANT(ok, "readdir: {}", errname(errno));
  for (auto& [name, n] : seen) WANT(n == 1, "readdir returned '{}' {} times", name, n);
  for (int i = 0; i < kMany; ++i) WANT(seen.count(nth(i)), "readdir did not return {}", nth(i));
  WANT(seen.count(".") && seen.count("..") && seen.count("subdir"), "readdir lacks ., .. or subdir");
  WANT(seen.size() == kMany + 3u, "readdir returned {} names, want {}", seen.size(), kMany + 3);
  return pass();
}

// Unlinking each entry as it is returned (what rm -r does), and meanwhile some not yet
// returned: every entry never unlinked before being read must come exactly once, none twice,
// and the directory must end empty.
Outcome readdir_unlink_during(const Ctx& c) {
  STEP(make_many(c));
  DIR* d = ::opendir(c.dir.c_str());
  WANT(d != nullptr, "opendir: {}", errname(errno));
  std::set<std::string> seen, removed_early;
  int next_victim = kMany - 1;  // removed from the far end, before readdir reaches them (likely)
  errno = 0;
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    WANT(seen.insert(n).second, "readdir returned {} twice while entries were unlinked", n);
    if (!removed_early.count(n)) SYS(::unlink(c.p(n).c_str()));
    if (seen.size() % 3 == 0 && next_victim >= 0) {
      std::string v = nth(next_victim--);
      if (!seen.count(v) && ::unlink(c.p(v).c_str()) == 0) removed_early.insert(v);
    }
    errno = 0;
  }
  WANT(errno == 0, "readdir while unlinking: {}", errname(errno));
  ::closedir(d);
  for (int i = 0; i < kMany; ++i)
    WANT(seen.count(nth(i)) || removed_early.count(nth(i)), "readdir skipped {}, never unlinked", nth(i));
  bool ok;
  auto rest = listing(c.dir, ok);
  WANT(ok && rest.size() == 2, "after unlinking everything the directory lists {} names", rest.size());
  return pass();
}

Outcome readdir_types_inodes(const Ctx& c) {
  STEP(put(c.p("f"), "x"));
  SYS(::mkdir(c.p("d").c_str(), 0755));
  SYS(::symlink("f", c.p("s").c_str()));
  SYS(::mkfifo(c.p("p").c_str(), 0644));
  const std::map<std::string, unsigned char> want{{"f", DT_REG}, {"d", DT_DIR}, {"s", DT_LNK}, {"p", DT_FIFO}};
  DIR* d = ::opendir(c.dir.c_str());
  WANT(d != nullptr, "opendir: {}", errname(errno));
  int found = 0;
  while (auto* e = ::readdir(d)) {
    auto it = want.find(e->d_name);
    if (it == want.end()) continue;
    ++found;
    WANT(e->d_type == DT_UNKNOWN || e->d_type == it->second, "d_type of {} is {}, want {}", it->first, e->d_type,
         it->second);
    struct stat st = LSTAT(c.p(it->first));
    WANT(e->d_ino == st.st_ino, "d_ino of {} is {}, lstat says {}", it->first, e->d_ino, st.st_ino);
  }
  ::closedir(d);
  WANT(found == 4, "readdir returned {} of the 4 entries", found);
  return pass();
}

Outcome readdir_rewind(const Ctx& c) {
  STEP(put(c.p("a"), "x"));
  DIR* d = ::opendir(c.dir.c_str());
  WANT(d != nullptr, "opendir: {}", errname(errno));
  int n = 0;
  while (::readdir(d)) ++n;
  WANT(n == 3, "first pass returned {} names, want 3", n);
  STEP(put(c.p("b"), "x"));
  ::rewinddir(d);
  bool b = false;
  n = 0;
  while (auto* e = ::readdir(d)) {
    ++n;
    b = b || std::string_view(e->d_name) == "b";
  }
  ::closedir(d);
  WANT(b && n == 4, "after rewinddir, {} names{}", n, b ? "" : ", without the file made since");
  return pass();
}

constexpr Check kChecks[] = {
    {"readdir.many", "1000 files and a directory: each listed exactly once", readdir_many},
    {"readdir.unlink_during", "unlinking while reading (rm -r): no repeats, no skips, ends empty", readdir_unlink_during},
    {"readdir.types_inodes", "d_type is right or DT_UNKNOWN; d_ino equals lstat's st_ino", readdir_types_inodes},
    {"readdir.rewind", "rewinddir sees a file made after the first pass", readdir_rewind},
};

}  // namespace

std::span<const Check> dir_checks() { return kChecks; }

}  // namespace ward::conform
