// `ward fuse` as a command (needs root and /dev/fuse): the background mode (returns once the
// mount serves, keeps serving detached, ends with the unmount; a failure before serving is the
// first process's exit code and stderr) and `ward fuse status` (state, restarts and their causes,
// a stale file of a killed ward, no ward at all, a second ward on the same mount point refused,
// a planted link in place of the status directory refused). Against ward-fuse-hostile.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "fuse/status.h"
#include "fuse/test_support.h"

namespace {

using namespace ward::fuse::testing;
namespace wf = ward::fuse;

// Whether `pid` runs (a zombie does not count: a background ward is not our child, and whoever
// inherits it may reap it late).
bool alive(pid_t pid) {
  std::string s = slurp("/proc/" + std::to_string(pid) + "/stat");
  auto close = s.rfind(')');
  return close != std::string::npos && close + 2 < s.size() && s[close + 2] != 'Z' && s[close + 2] != 'X';
}

bool ends_by(pid_t pid, std::chrono::milliseconds limit) {
  auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (!alive(pid)) return true;
    ::usleep(5'000);
  }
  return false;
}

struct Ran {
  Exit exit;
  std::string out, err;
  int code() const { return exit.done && WIFEXITED(exit.status) ? WEXITSTATUS(exit.status) : -1; }
};

class FuseCli : public Fixture {
 protected:
  void SetUp() override {
    Fixture::SetUp();
    if (IsSkipped()) return;
    status_dir_ = dir_ + "/status";
  }

  void TearDown() override {
    if (dir_.empty()) return Fixture::TearDown();
    // Background wards are not our children: found by the test directory in their command line.
    for (pid_t p : processes_mentioning(dir_, "ward")) ::kill(p, SIGKILL);
    (void)processes_gone(dir_, 5s);
    Fixture::TearDown();  // unmounts, removes the directory (and the status directory in it)
    // A status file in the default directory, for the tests that use it.
    for (const auto& m : mounts_) {
      auto path = wf::status_dir() / wf::status_name(wf::absolute_mountpoint(m));
      if (slurp(path).find(dir_) != std::string::npos) ::unlink(path.c_str());
    }
  }

 public:
  // Runs `ward ARGS...` to its end (bounded), stdout and stderr to files. `status_dir` empty:
  // the default directory.
  // `both` >= 0: stdout and stderr are that descriptor instead (out and err stay empty).
  Ran ward(const std::vector<std::string>& args, bool default_dir = false, int both = -1) {
    static int n = 0;
    std::string out = dir_ + "/out" + std::to_string(n), err = dir_ + "/err" + std::to_string(n);
    ++n;
    std::vector<std::string> env;
    if (!default_dir) env.push_back("WARD_FUSE_STATUS_DIR=" + status_dir_);
    for (char** e = environ; *e; ++e)
      if (!std::string_view(*e).starts_with("WARD_FUSE_STATUS_DIR=")) env.push_back(*e);
    std::vector<std::string> argv_s{kWard};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv, envp;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    Ran r;
    r.exit = in_child([&] {
      int o = both >= 0 ? both : ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int e = both >= 0 ? both : ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(o, 1);
      ::dup2(e, 2);
      ::execve(argv[0], argv.data(), envp.data());
      return 127;
    });
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }

  // `ward fuse MNT -- ward-fuse-hostile MODE {}` in the background mode.
  Ran background(const std::string& mode, bool default_dir = false) {
    mounts_.push_back(mnt_);
    return ward({"fuse", mnt_, "--", kHostile, mode, "{}"}, default_dir);
  }

  // The ward pid of the status of mnt_, or -1.
  pid_t ward_pid(bool default_dir = false) {
    auto s = wf::read_status(default_dir ? wf::status_dir() : fs::path(status_dir_), mnt_);
    return s ? static_cast<pid_t>(std::stol(s->get("ward_pid"))) : -1;
  }

  std::string status_dir_;
};

// Reads `key: value` from a status print.
std::string field(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.starts_with(key + ": ")) return line.substr(key.size() + 2);
  return "<none>";
}

TEST_F(FuseCli, BackgroundReturnsOnceServingAndUnmountEndsIt) {
  Ran r = background("good", /*default_dir=*/true);
  ASSERT_EQ(r.code(), 0) << r.err;
  // Serving already: no waiting here.
  EXPECT_EQ(mount_type(mnt_), "fuse.ward");
  Exit app = stat_in_child(mnt_);
  EXPECT_TRUE(app.done && WIFEXITED(app.status) && WEXITSTATUS(app.status) == 0) << app.status;
  // The default status directory: root's and private.
  struct stat st {};
  ASSERT_EQ(::lstat(wf::status_dir().c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  Ran s = ward({"fuse", "status", mnt_}, true);
  ASSERT_EQ(s.code(), 0) << s.err;
  EXPECT_EQ(field(s.out, "state"), "serving") << s.out;
  EXPECT_EQ(field(s.out, "mountpoint"), mnt_) << s.out;
  pid_t pid = ward_pid(true);
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(alive(pid));
  EXPECT_NE(field(s.out, "fs_pid"), "") << s.out;
  // Detached: its own session, not in ours.
  EXPECT_EQ(::getsid(pid), pid);
  ASSERT_EQ(::umount2(mnt_.c_str(), 0), 0) << std::strerror(errno);
  EXPECT_TRUE(ends_by(pid, 10s)) << "the background ward outlived its unmount";
  EXPECT_TRUE(processes_gone(dir_)) << "a process of the mount outlived it";
  Ran after = ward({"fuse", "status", mnt_}, true);
  EXPECT_EQ(after.code(), 1);
  EXPECT_NE(after.err.find("no ward fuse serves " + mnt_), std::string::npos) << after.err;
}

// In the background ward lets go of the stderr it was started with: once the first process has
// returned, nothing of the mount holds it. Before, the file system's first instance kept it, so a
// `$(ward fuse ...)` or a pipe reading ward's output never reached its end, and the instance
// printed on the user's terminal after ward had gone to the background. What the file system
// prints from then on goes to --log.
TEST_F(FuseCli, InTheBackgroundTheTerminalIsLetGo) {
  const std::string log = dir_ + "/log";
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  mounts_.push_back(mnt_);
  Ran r = ward({"fuse", "--log", log, mnt_, "--", kHostile, "chatty", "{}"}, false, p[1]);
  ::close(p[1]);
  std::string said;
  bool ended = false;
  for (auto end = Clock::now() + 5s; !ended && Clock::now() < end;) {
    pollfd pf{p[0], POLLIN, 0};
    if (::poll(&pf, 1, 100) != 1) continue;
    char b[4096];
    ssize_t n = ::read(p[0], b, sizeof b);
    if (n > 0) said.append(b, static_cast<std::size_t>(n));
    ended = n == 0;
  }
  ::close(p[0]);
  ASSERT_EQ(r.code(), 0) << said;
  EXPECT_TRUE(ended) << "a process of the mount still holds ward's first stderr; it said: " << said;
  const std::string fs = "ward fuse " + mnt_ + ": fs: ";
  EXPECT_EQ(said.find(fs), std::string::npos) << said;
  Exit app = stat_in_child(mnt_ + "/say-late");
  EXPECT_TRUE(app.done && WIFEXITED(app.status) && WEXITSTATUS(app.status) == 6) << app.status;
  std::string text;
  for (auto end = Clock::now() + 5s; Clock::now() < end && text.find("said late") == std::string::npos; ::usleep(10'000))
    text = slurp(log);
  EXPECT_NE(text.find(fs + "starting "), std::string::npos) << text;
  EXPECT_NE(text.find(fs + "prompt: said late\n"), std::string::npos) << text;
  pid_t pid = ward_pid();
  ASSERT_EQ(::umount2(mnt_.c_str(), 0), 0) << std::strerror(errno);
  EXPECT_TRUE(pid < 0 || ends_by(pid, 10s));
}

// What the file system prints goes to --log as text, not to ward's stderr: each line led by
// "ward fuse MNT: fs: ", each byte a terminal would act on (ESC, BEL, CR, a C1 control in UTF-8,
// a right-to-left override, a byte that is no UTF-8) written as \xHH, text kept; a prompt without
// its newline is forwarded as it is. An 8 MiB flood of it holds up no request, and all of it
// arrives.
TEST_F(FuseCli, TheFileSystemsOutputIsLoggedAsText) {
  const std::string log = dir_ + "/log";
  start({"--log", log}, {kHostile, "chatty", "{}"});
  ASSERT_TRUE(mounted()) << stderr_;
  Exit say = stat_in_child(mnt_ + "/say-hello");
  EXPECT_TRUE(say.done && WIFEXITED(say.status) && WEXITSTATUS(say.status) == 6) << say.status;
  Exit flood = stat_in_child(mnt_ + "/flood");
  EXPECT_TRUE(flood.done && WIFEXITED(flood.status) && WEXITSTATUS(flood.status) == 6) << flood.status;
  for (int i = 0; i < 200; ++i) {
    Exit app = stat_in_child(mnt_);
    ASSERT_TRUE(app.done && WIFEXITED(app.status) && WEXITSTATUS(app.status) == 0) << i << ": " << app.status;
  }
  const std::string fs = "ward fuse " + mnt_ + ": fs: ";
  const std::string y = fs + std::string(4095, 'y') + "\n";
  auto count = [&](const std::string& text) {
    std::size_t n = 0;
    for (std::size_t at = text.find(y); at != std::string::npos; at = text.find(y, at + y.size())) ++n;
    return n;
  };
  std::string text;
  for (auto end = Clock::now() + 20s; Clock::now() < end && count(text) < 2048; ::usleep(20'000)) text = slurp(log);
  ASSERT_EQ(::umount2(mnt_.c_str(), 0), 0) << std::strerror(errno);
  Exit e = ward_exit();
  EXPECT_TRUE(e.done && WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << stderr_;
  text = slurp(log);
  EXPECT_EQ(count(text), 2048u);
  EXPECT_NE(text.find(fs + "starting \\x1b]0;owned\\x07 \\x1b[31mred\\x0d\\xc2\\x9b\\xe2\\x80\\xae\\xff end\n"),
            std::string::npos)
      << text.substr(0, 2000);
  EXPECT_NE(text.find(fs + "prompt: said hello\n"), std::string::npos) << text.substr(0, 2000);
  for (char c : {'\x1b', '\x07', '\r', '\x9b', '\xff'})
    EXPECT_EQ(text.find(c), std::string::npos) << "a raw byte " << static_cast<int>(static_cast<unsigned char>(c));
  EXPECT_EQ(text.find("\xe2\x80\xae"), std::string::npos);
  EXPECT_EQ(stderr_.find(fs), std::string::npos) << stderr_;
}

// A file system's syslog(3) in the sandbox reaches ward's log as a line of its own, level said,
// escapes escaped (before, the sandbox had no /dev/log and it was lost).
TEST_F(FuseCli, TheFileSystemsSyslogIsLogged) {
  const std::string log = dir_ + "/log";
  start({"--log", log}, {kHostile, "syslog", "{}"});
  ASSERT_TRUE(mounted()) << stderr_;
  const std::string want = "]: said to syslog \\x1b[31m\n";
  std::string text;
  for (auto end = Clock::now() + 10s; Clock::now() < end && text.find(want) == std::string::npos; ::usleep(10'000))
    text = slurp(log);
  EXPECT_NE(text.find("ward fuse " + mnt_ + ": fs: syslog err: ward-hostile["), std::string::npos) << text;
  EXPECT_NE(text.find(want), std::string::npos) << text;
  ASSERT_EQ(::umount2(mnt_.c_str(), 0), 0) << std::strerror(errno);
  Exit e = ward_exit();
  EXPECT_TRUE(e.done && WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << stderr_;
}

// The file system's stdin is never ward's: a restarted instance would have nobody to ask, and one
// reading a terminal from its own process group is stopped with its mount waiting on it. Here
// ward's stdin is a pipe with a line in it that stays open: each instance reads end of file at
// once (before, the first read the line and waited for more). With --fs-stdin every instance
// reads the same bytes, from the start.
TEST_F(FuseCli, TheFileSystemsStdinIsNothingOrWhatFsStdinGave) {
  for (bool given : {false, true}) {
    SCOPED_TRACE(given ? "--fs-stdin -" : "no --fs-stdin");
    const std::string log = dir_ + "/log" + std::to_string(given);
    int in[2];
    ASSERT_EQ(::pipe2(in, O_CLOEXEC), 0);
    ASSERT_EQ(::write(in[1], "pass word\nline2\n", 16), 16);
    if (given) ::close(std::exchange(in[1], -1));  // ward reads its stdin to the end first
    std::vector<std::string> opts{"--log", log};
    if (given) opts.insert(opts.end(), {"--fs-stdin", "-"});
    start(opts, {kHostile, "read-stdin:" + dir_ + "/state" + std::to_string(given), "{}"}, "", in[0]);
    ::close(in[0]);
    ASSERT_TRUE(mounted()) << stderr_ << slurp(log);
    Exit app = stat_in_child(mnt_);  // the first instance dies on it; the second answers
    EXPECT_TRUE(app.done && WIFEXITED(app.status) && WEXITSTATUS(app.status) == 0) << app.status << slurp(log);
    std::string text;
    for (auto end = Clock::now() + 20s; Clock::now() < end && text.find("restarted (restart 1") == std::string::npos;
         ::usleep(10'000))
      text = slurp(log);
    const std::string line = "ward fuse " + mnt_ + ": fs: stdin: [" + (given ? "pass word|line2|" : "") + "] then end of file\n";
    std::size_t n = 0;
    for (auto at = text.find(line); at != std::string::npos; at = text.find(line, at + 1)) ++n;
    EXPECT_EQ(n, 2u) << "both instances read the same\n" << text;
    ASSERT_EQ(::umount2(mnt_.c_str(), 0), 0) << std::strerror(errno);
    Exit e = ward_exit();
    EXPECT_TRUE(e.done && WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << stderr_;
    if (in[1] >= 0) ::close(in[1]);
  }
}

// --fs-stdin that cannot be read, or is larger than what is kept for every instance: exit 1, said,
// nothing mounted.
TEST_F(FuseCli, FsStdinThatCannotBeKeptIsRefused) {
  const std::string big = dir_ + "/big";
  {
    std::ofstream f(big);
    f << std::string((std::size_t{1} << 20) + 1, 'x');
  }
  mounts_.push_back(mnt_);
  const std::pair<std::string, const char*> cases[] = {{dir_ + "/missing", "No such file"}, {big, "more than 1 MiB"}};
  for (const auto& [path, words] : cases) {
    Ran r = ward({"fuse", "--fs-stdin", path, mnt_, "--", kHostile, "good", "{}"});
    EXPECT_EQ(r.code(), 1) << path << ": " << r.err;
    EXPECT_NE(r.err.find("--fs-stdin " + path + ": " + words), std::string::npos) << r.err;
    EXPECT_EQ(mount_type(mnt_), "") << path;
  }
}

TEST_F(FuseCli, FailureBeforeServingIsTheFirstProcessesExit) {
  Ran r = background("exit");
  EXPECT_EQ(r.code(), 3) << r.err;
  EXPECT_NE(r.err.find("ward fuse: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("exit status 7"), std::string::npos) << r.err;
  EXPECT_EQ(mount_type(mnt_), "");
  EXPECT_TRUE(processes_gone(dir_, 5s));
  EXPECT_EQ(wf::read_status(status_dir_, mnt_).error().kind, ward::Errc::load_failed) << "status file left";
}

// With --log the file system's own words are in the log, not on the terminal: a failure before
// serving says where to look.
TEST_F(FuseCli, FailureBeforeServingPointsToTheLog) {
  const std::string log = dir_ + "/log";
  mounts_.push_back(mnt_);
  Ran r = ward({"fuse", "--log", log, mnt_, "--", kHostile, "exit", "{}"});
  EXPECT_EQ(r.code(), 3) << r.err;
  EXPECT_NE(r.err.find("the file system's own output is in " + log), std::string::npos) << r.err;
  EXPECT_EQ(mount_type(mnt_), "");
}

TEST_F(FuseCli, CommandThatCannotRunIsExitOne) {
  mounts_.push_back(mnt_);
  Ran r = ward({"fuse", mnt_, "--", dir_ + "/no-such-fs", "{}"});
  EXPECT_EQ(r.code(), 1) << r.err;
  EXPECT_NE(r.err.find("no-such-fs"), std::string::npos) << r.err;
  EXPECT_EQ(mount_type(mnt_), "");
}

// --user that names no one is bad usage (2), said in words, before anything is mounted: an
// unknown name or group, a uid the user database does not know given without its group, uid -1,
// an empty part.
TEST_F(FuseCli, AUserThatNamesNoOneIsBadUsage) {
  mounts_.push_back(mnt_);
  const std::pair<const char*, const char*> cases[] = {
      {"no-such-user-xq", "no user named"},  {"nobody:no-such-group-xq", "no group named"},
      {"4242424", "4242424:GID"},            {"4294967295:1", "out of range"},
      {"nobody:", "USER:GROUP"},             {":1", "USER:GROUP"}};
  for (const auto& [spec, words] : cases) {
    Ran r = ward({"fuse", "--user", spec, mnt_, "--", kHostile, "good", "{}"});
    EXPECT_EQ(r.code(), 2) << spec << ": " << r.err;
    EXPECT_NE(r.err.find(words), std::string::npos) << spec << ": " << r.err;
    EXPECT_EQ(mount_type(mnt_), "") << spec;
  }
}

TEST_F(FuseCli, StatusShowsRestartsAndTheirCause) {
  start({}, {kHostile, "crash-once:" + dir_ + "/state", "{}"});
  ASSERT_TRUE(mounted()) << stderr_;
  Exit app = stat_in_child(mnt_);
  ASSERT_TRUE(app.done && WIFEXITED(app.status) && WEXITSTATUS(app.status) == 0) << app.status;
  // The re-issued GETATTR is answered before the restart is recorded (the record counts the
  // answers): the application may be done first. Asked again until recorded, within a bound.
  Ran s = ward({"fuse", "status", mnt_});
  for (auto end = Clock::now() + 20s; Clock::now() < end && s.code() == 0 &&
                                      s.out.find(" restarted: restarted (restart 1") == std::string::npos;)
    ::usleep(10'000), s = ward({"fuse", "status", mnt_});
  ASSERT_EQ(s.code(), 0) << s.err;
  EXPECT_EQ(field(s.out, "state"), "serving") << s.out;
  EXPECT_EQ(field(s.out, "restarts"), "1") << s.out;
  EXPECT_EQ(field(s.out, "reissued"), "1") << s.out;
  EXPECT_EQ(field(s.out, "ward_pid"), std::to_string(ward_)) << s.out;
  EXPECT_EQ(field(s.out, "user"), "root") << s.out;
  EXPECT_EQ(field(s.out, "journal"), "off") << s.out;
  EXPECT_NE(field(s.out, "last_failure").find("killed by SIGABRT"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find(" restarted: restarted (restart 1"), std::string::npos) << s.out;
  Ran j = ward({"fuse", "status", "--json", mnt_});
  ASSERT_EQ(j.code(), 0) << j.err;
  EXPECT_NE(j.out.find("\"restarts\": 1,"), std::string::npos) << j.out;
  EXPECT_NE(j.out.find("\"stale\": false"), std::string::npos) << j.out;
  Ran all = ward({"fuse", "status"});
  ASSERT_EQ(all.code(), 0) << all.err;
  EXPECT_NE(all.out.find(mnt_ + "  serving  restarts 1"), std::string::npos) << all.out;
  ASSERT_EQ(::umount2(mnt_.c_str(), 0), 0);
  Exit e = ward_exit();
  EXPECT_TRUE(e.done && WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << stderr_;
  Ran gone = ward({"fuse", "status"});
  EXPECT_NE(gone.out.find("no ward fuse mounts"), std::string::npos) << gone.out;
}

// --user whose user may not read what the file system is given is refused before anything is
// mounted (exit 1, in words): a --see directory closed to others, a file on the command line only
// root may read. With --no-auto-see the command line is not judged. In the sandbox only the path
// itself is judged (the file system reaches it through directories ward makes): the user's own
// file passes although the test's directory above it is closed to others; without the sandbox
// the whole path is, and the same file is refused.
TEST_F(FuseCli, AUserWhoCannotReadItsPathsIsRefused) {
  constexpr uid_t kNobody = 65534;
  ASSERT_TRUE(wf::find_user("nobody"));
  const std::string closed = dir_ + "/closed", open = dir_ + "/open";
  ASSERT_EQ(::mkdir(closed.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir(open.c_str(), 0755), 0);
  ASSERT_EQ(::chown(open.c_str(), kNobody, kNobody), 0);
  const std::string secret = open + "/secret", mine = open + "/mine";
  for (const auto& f : {secret, mine}) {
    int fd = ::open(f.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ::close(fd);
  }
  ASSERT_EQ(::chown(mine.c_str(), kNobody, kNobody), 0);
  mounts_.push_back(mnt_);
  auto run = [&](std::vector<std::string> opts, const std::string& path) {
    std::vector<std::string> args{"fuse", "--user", "nobody", "--allow-other"};
    args.insert(args.end(), opts.begin(), opts.end());
    args.insert(args.end(), {mnt_, "--", kHostile, "probe", "{}", path});
    return ward(args);
  };
  auto serves_then_ends = [&](const Ran& r) {
    EXPECT_EQ(r.code(), 0) << r.err;
    if (r.code() != 0) return;
    EXPECT_EQ(mount_type(mnt_), "fuse.ward");
    pid_t pid = ward_pid();
    EXPECT_EQ(::umount2(mnt_.c_str(), 0), 0) << std::strerror(errno);
    EXPECT_TRUE(pid < 0 || ends_by(pid, 10s));
  };

  Ran see = run({"--see", closed}, open);
  EXPECT_EQ(see.code(), 1) << see.err;
  EXPECT_NE(see.err.find("--user nobody: the file system could not list " + closed + " (named by --see): " +
                         std::strerror(EACCES)),
            std::string::npos)
      << see.err;
  EXPECT_EQ(mount_type(mnt_), "");

  Ran named = run({}, secret);
  EXPECT_EQ(named.code(), 1) << named.err;
  EXPECT_NE(named.err.find("could not read " + secret + " (named by the command line): " + std::strerror(EACCES)),
            std::string::npos)
      << named.err;
  EXPECT_NE(named.err.find("--no-auto-see"), std::string::npos) << named.err;
  EXPECT_EQ(mount_type(mnt_), "");

  serves_then_ends(run({"--no-auto-see"}, secret));
  serves_then_ends(run({}, mine));

  Ran host = run({"--no-sandbox"}, mine);
  EXPECT_EQ(host.code(), 1) << host.err;
  EXPECT_NE(host.err.find("could not read " + mine), std::string::npos) << host.err;
  EXPECT_EQ(mount_type(mnt_), "");
}

// Under --user the status names the user the file system runs as.
TEST_F(FuseCli, StatusSaysWhoTheFileSystemRunsAs) {
  auto nobody = wf::find_user("nobody");
  ASSERT_TRUE(nobody) << nobody.error().detail;
  start({"--user", "nobody", "--allow-other"}, {kHostile, "good", "{}"});
  ASSERT_TRUE(mounted()) << stderr_;
  Ran s = ward({"fuse", "status", mnt_});
  ASSERT_EQ(s.code(), 0) << s.err;
  EXPECT_EQ(field(s.out, "user"),
            "nobody (uid " + std::to_string(nobody->uid) + ", gid " + std::to_string(nobody->gid) + ")")
      << s.out;
  ASSERT_EQ(::umount2(mnt_.c_str(), 0), 0);
  Exit e = ward_exit();
  EXPECT_TRUE(e.done && WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << stderr_;
}

// A journal let go (here: past --journal-limit) is in the status at once, with why: restarts no
// longer bring back what the file system held only in memory, and the user should know.
TEST_F(FuseCli, StatusSaysWhenTheJournalWasDropped) {
  if (::access(kBuffering.c_str(), X_OK) != 0) GTEST_SKIP() << "ward-fuse-buffering not built";
  const std::string backing = dir_ + "/backing";
  fs::create_directories(backing);
  start({"--journal", "--journal-limit", "1"}, {kBuffering, backing, "{}"});
  ASSERT_TRUE(mounted()) << stderr_;
  Ran before = ward({"fuse", "status", mnt_});
  ASSERT_EQ(before.code(), 0) << before.err;
  EXPECT_EQ(field(before.out, "journal"), "on") << before.out;
  Exit wrote = in_child([&] {  // 2 MiB of writes: twice what the journal may hold
    int fd = ::open((mnt_ + "/big").c_str(), O_CREAT | O_WRONLY, 0644);
    std::string chunk(64 << 10, 'x');
    for (int i = 0; fd >= 0 && i < 32; ++i)
      if (::write(fd, chunk.data(), chunk.size()) != static_cast<ssize_t>(chunk.size())) return 1;
    return fd >= 0 && ::close(fd) == 0 ? 0 : 1;
  });
  ASSERT_TRUE(wrote.done && WIFEXITED(wrote.status) && WEXITSTATUS(wrote.status) == 0) << wrote.status;
  Ran after = ward({"fuse", "status", mnt_});
  ASSERT_EQ(after.code(), 0) << after.err;
  EXPECT_TRUE(field(after.out, "journal").starts_with("dropped: it reached --journal-limit (1048576 bytes)"))
      << after.out;
  EXPECT_EQ(field(after.out, "state"), "serving") << after.out;
  EXPECT_EQ(field(after.out, "journal_entries"), "0") << after.out;
  EXPECT_NE(after.out.find(" journal_dropped: it reached --journal-limit"), std::string::npos) << after.out;
  ASSERT_EQ(::umount2(mnt_.c_str(), 0), 0);
  Exit e = ward_exit();
  EXPECT_TRUE(e.done && WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << stderr_;
}

TEST_F(FuseCli, StaleStatusOfAKilledWardIsReportedAndRemoved) {
  start({}, {kHostile, "good", "{}"});
  ASSERT_TRUE(mounted()) << stderr_;
  ASSERT_EQ(ward({"fuse", "status", mnt_}).code(), 0);
  ::kill(ward_, SIGKILL);
  ASSERT_TRUE(ward_exit().done);
  auto file = fs::path(status_dir_) / wf::status_name(mnt_);
  ASSERT_TRUE(fs::exists(file)) << "a SIGKILLed ward cannot remove its status file";
  Ran s = ward({"fuse", "status", mnt_});
  EXPECT_EQ(s.code(), 1);
  EXPECT_NE(s.err.find("stale: the ward that served it (pid"), std::string::npos) << s.err;
  EXPECT_FALSE(fs::exists(file));
}

TEST_F(FuseCli, NoWardServesAPlainDirectory) {
  Ran s = ward({"fuse", "status", mnt_});
  EXPECT_EQ(s.code(), 1);
  EXPECT_NE(s.err.find("no ward fuse serves " + mnt_), std::string::npos) << s.err;
}

TEST_F(FuseCli, SecondWardOnTheSameMountPointIsRefused) {
  start({}, {kHostile, "good", "{}"});
  ASSERT_TRUE(mounted()) << stderr_;
  Ran second = ward({"fuse", "--foreground", mnt_, "--", kHostile, "good", "{}"});
  EXPECT_EQ(second.code(), 1) << second.err;
  EXPECT_NE(second.err.find("already serves " + mnt_), std::string::npos) << second.err;
  // Still the first one's: one mount, its status intact.
  Ran s = ward({"fuse", "status", mnt_});
  EXPECT_EQ(field(s.out, "ward_pid"), std::to_string(ward_)) << s.out;
  ASSERT_EQ(::umount2(mnt_.c_str(), 0), 0);
  EXPECT_EQ(mount_type(mnt_), "") << "two mounts were stacked";
}

TEST_F(FuseCli, LinkInPlaceOfTheStatusDirectoryIsRefused) {
  fs::create_directory(dir_ + "/elsewhere");
  fs::create_directory_symlink(dir_ + "/elsewhere", status_dir_);
  Ran r = background("good");
  EXPECT_EQ(r.code(), 1) << r.err;
  EXPECT_NE(r.err.find("symbolic link"), std::string::npos) << r.err;
  EXPECT_EQ(mount_type(mnt_), "");
  EXPECT_TRUE(fs::is_empty(dir_ + "/elsewhere"));
}

}  // namespace
