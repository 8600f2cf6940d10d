// ward-fsconform: POSIX file-system checks run inside a directory (docs/fuse.md, "Conformance").
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fuse/conform/runner.h"

namespace {

using namespace ward::conform;

constexpr const char* kHelp = R"(usage: ward-fsconform [--only PATTERN]... [--timeout SECONDS] DIR
       ward-fsconform --list [--only PATTERN]...
       ward-fsconform --help

Runs POSIX file-system checks inside DIR: open(2) flags, errno cases, names, mkdir/rmdir, link
counts, hard and symbolic links, rename, unlink of open files, truncate, holes, offsets past
4 GiB, data integrity, mmap, fsync, statfs, locks, extended attributes, chmod/chown, permission
checks as uid 65534 (nobody; needs root, and a FUSE mount with allow_other), utimensat, the
times each call updates, readdir with 1000 entries and while unlinking.

Each check runs in a child process with a deadline, in its own directory under
DIR/.ward-fsconform-PID, which is removed afterwards (the work directory too): a hung file
system fails the check instead of hanging the suite.

Output: one line per check,
  pass NAME
  FAIL NAME: what was called, what came back, what POSIX wants
  skip NAME: why it cannot run here (ENOTSUP extended attributes, not root, ...)
then a summary: N passed, M failed, K skipped.

Options:
  --only PATTERN     run only matching checks (repeatable): a shell glob ('rename.*'), or a
                     name or group ('rename' = rename.*)
  --timeout SECONDS  deadline of each check (default 60)
  --list             print the checks' names and what each checks, and exit
  --help             this text

Exit status: 0 no check failed, 1 a check failed, 2 bad usage or DIR unusable.
)";

int usage(const std::string& why) {
  std::fprintf(stderr, "ward-fsconform: %s (see --help)\n", why.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string& into) {
      if (i + 1 >= argc) return false;
      into = argv[++i];
      return true;
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kHelp, stdout);
      return 0;
    } else if (a == "--list") {
      o.list = true;
    } else if (a == "--only") {
      std::string p;
      if (!value(p) || p.empty()) return usage("--only needs a pattern");
      o.only.push_back(p);
    } else if (a == "--timeout") {
      std::string v;
      if (!value(v)) return usage("--timeout needs a number of seconds");
      char* end = nullptr;
      long s = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || s < 1 || s > 86400) return usage("--timeout: '" + v + "' is not 1..86400 seconds");
      o.timeout = std::chrono::seconds(s);
    } else if (a.starts_with("-") && a != "-") {
      return usage("unknown option " + a);
    } else if (o.dir.empty()) {
      o.dir = a;
    } else {
      return usage("one DIR only, got '" + o.dir + "' and '" + a + "'");
    }
  }
  auto checks = select(o.only);
  if (checks.empty()) return usage("no check matches the --only patterns");
  if (o.list) {
    for (const Check* c : checks) std::printf("%-26s %s\n", c->name, c->what);
    return 0;
  }
  if (o.dir.empty()) return usage("no DIR given");
  auto t = run(o, checks, stdout);
  if (!t) {
    std::fprintf(stderr, "ward-fsconform: %s\n", t.error().detail.c_str());
    return 2;
  }
  return t->failed == 0 ? 0 : 1;
}
