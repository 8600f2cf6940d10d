// `ward fuse`: mounts a FUSE file system through ward's relay (include/ward/fuse/relay.h), by
// default in the background once it serves; `ward fuse status` reads the status files the running
// wards keep (src/fuse/status.h). docs/fuse.md, "Status and background mode".
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "commands.h"
#include "fuse/status.h"
#include "ward/fuse/relay.h"

namespace ward::cli {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How long the first process waits for the background ward to serve, beyond --init-timeout
// (opening /dev/fuse, mounting, starting the file system) and --exit-timeout (its teardown).
constexpr auto kReadySlack = 10s;

// The exit code of a reaped `ward fuse`, or 1 if it died on a signal (said on stderr).
int exit_code_of(pid_t pid, int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  std::fprintf(stderr, "ward fuse: the background ward (pid %d) was killed by %s before it served\n", pid,
               ::strsignal(WTERMSIG(st)));
  return 1;
}

// Reaps `pid` by `end`, else SIGKILLs and reaps it. Returns its wait status.
int reap_by(pid_t pid, Clock::time_point end) {
  int st = 0;
  while (Clock::now() < end) {
    if (::waitpid(pid, &st, WNOHANG) == pid) return st;
    ::usleep(5'000);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &st, 0);
  return st;
}

// --fs-stdin: the whole of `path` (`-`: ward's stdin), at most Options::kMaxFsInput bytes.
Result<std::string> read_fs_input(const std::string& path) {
  const bool std_in = path == "-";
  const int fd = std_in ? 0 : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(Errc::misuse, std::strerror(errno));
  std::string got;
  char b[65536];
  int err = 0;
  for (;;) {
    ssize_t n = ::read(fd, b, sizeof b);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) err = errno;
    if (n <= 0) break;
    got.append(b, static_cast<std::size_t>(n));
    if (got.size() > fuse::Options::kMaxFsInput) break;
  }
  if (!std_in) ::close(fd);
  if (err != 0) return fail(Errc::misuse, std::strerror(err));
  if (got.size() > fuse::Options::kMaxFsInput)
    return fail(Errc::misuse, "more than " + std::to_string(fuse::Options::kMaxFsInput >> 20) +
                                  " MiB; the file system's input is kept whole for every instance");
  return got;
}

// The first process of `ward fuse` in the background mode: waits until the background ward says
// the mount serves (a byte on `ready`) and exits 0, or until it ended first (end of file: its
// error is already on the shared stderr) and exits with its code. The deadline stops it (SIGTERM:
// it unmounts) when nothing happened in time; a SIGINT/SIGTERM/SIGHUP to this process is passed on.
int wait_until_serving(pid_t child, int ready, const fuse::Options& o) {
  const auto limit = o.init_timeout + o.exit_timeout + kReadySlack;
  const auto end = Clock::now() + limit;
  sigset_t stop;
  sigemptyset(&stop);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&stop, s);
  int sfd = ::signalfd(-1, &stop, SFD_CLOEXEC);
  for (;;) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(end - Clock::now()).count();
    pollfd p[2] = {{ready, POLLIN, 0}, {sfd, POLLIN, 0}};
    int r = ::poll(p, sfd >= 0 ? 2 : 1, static_cast<int>(std::max<long long>(0, left)));
    if (r < 0 && errno == EINTR) continue;
    if (r > 0 && (p[1].revents & POLLIN)) {
      signalfd_siginfo si{};
      (void)!::read(sfd, &si, sizeof si);
      ::kill(child, SIGTERM);  // it unmounts and ends the file system; its exit code follows
      continue;
    }
    if (r > 0) {
      char b = 0;
      ssize_t n = ::read(ready, &b, 1);
      if (n < 0 && errno == EINTR) continue;
      if (sfd >= 0) ::close(sfd);
      if (n == 1) return 0;
      return exit_code_of(child, reap_by(child, Clock::now() + o.exit_timeout + kReadySlack));
    }
    if (sfd >= 0) ::close(sfd);
    std::fprintf(stderr, "ward fuse: %s did not serve within %lld ms; stopping it\n", o.mountpoint.c_str(),
                 static_cast<long long>(limit.count()));
    ::kill(child, SIGTERM);
    (void)reap_by(child, Clock::now() + o.exit_timeout + kReadySlack);
    return 1;
  }
}

// ---- ward fuse status ------------------------------------------------------------------------------

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
    else if (c < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      out += b;
    } else out += static_cast<char>(c);
  }
  return out + "\"";
}

std::string json_value(const std::string& v) {
  bool number = !v.empty() && v.size() < 20 && v.find_first_not_of("0123456789") == std::string::npos;
  return number ? v : json_string(v);
}

std::string to_json(const fuse::Status& s) {
  std::string out = "{";
  for (const auto& [k, v] : s.fields) out += json_string(k) + ": " + json_value(v) + ", ";
  out += "\"stale\": " + std::string(s.stale ? "true" : "false") + ", \"events\": [";
  for (std::size_t i = 0; i < s.events.size(); ++i) out += (i ? ", " : "") + json_string(s.events[i]);
  return out + "]}";
}

std::string stale_words(const fuse::Status& s) {
  return "stale: the ward that served it (pid " + s.get("ward_pid") + ") is gone; status file removed";
}

int print_status(const std::optional<std::string>& mnt, bool json) {
  const auto dir = fuse::status_dir();
  if (mnt) {
    auto s = fuse::read_status(dir, *mnt);
    if (!s) {
      std::fprintf(stderr, "ward fuse status: %s\n", s.error().detail.c_str());
      return 1;
    }
    if (s->stale) {
      fuse::remove_stale(*s);
      std::fprintf(stderr, "ward fuse status: %s: %s\n", s->get("mountpoint").c_str(), stale_words(*s).c_str());
      if (json) std::printf("%s\n", to_json(*s).c_str());
      return 1;
    }
    if (json) {
      std::printf("%s\n", to_json(*s).c_str());
      return 0;
    }
    for (const auto& [k, v] : s->fields) std::printf("%s: %s\n", k.c_str(), v.c_str());
    for (const auto& e : s->events) std::printf("event: %s\n", e.c_str());
    return 0;
  }
  auto all = fuse::read_all_status(dir);
  if (!all) {
    std::fprintf(stderr, "ward fuse status: %s\n", all.error().detail.c_str());
    return 1;
  }
  if (json) std::printf("[");
  bool first = true;
  for (const auto& s : *all) {
    if (s.stale) fuse::remove_stale(s);
    if (json) {
      std::printf("%s%s", first ? "" : ",\n ", to_json(s).c_str());
    } else if (s.stale) {
      std::printf("%s  %s\n", s.get("mountpoint").c_str(), stale_words(s).c_str());
    } else {
      std::printf("%s  %s  restarts %s  requests %s  ward pid %s  fs pid %s  since %s\n", s.get("mountpoint").c_str(),
                  s.get("state").c_str(), s.get("restarts").c_str(), s.get("requests").c_str(),
                  s.get("ward_pid").c_str(), s.get("fs_pid").c_str(), s.get("started").c_str());
    }
    first = false;
  }
  if (json) std::printf("]\n");
  else if (all->empty()) std::printf("no ward fuse mounts (%s)\n", dir.c_str());
  return 0;
}

void add_status(CLI::App& fuse_cmd, int& exit_code) {
  auto* cmd = fuse_cmd.add_subcommand(
      "status",
      "The status of the `ward fuse` serving MOUNTPOINT: its command, ward's and the file system's "
      "pids, state (starting, serving, restarting, failed), when it started, restarts and the last "
      "failure's cause and time, requests, replies, requests re-issued to a restarted file system, "
      "requests answered EIO instead (refused), nodes lost (stale_nodes), and the last events. "
      "Counters are as of the last event (`updated`). Without MOUNTPOINT: one line per mount.\n"
      "Read from the status files the running wards keep in $WARD_FUSE_STATUS_DIR or /run/ward/fuse "
      "(root only). A file left by a ward that was killed is reported as stale and removed.\n"
      "Exit codes: 0 printed; 1 no ward fuse serves MOUNTPOINT, its status file was stale, or the "
      "directory cannot be read.");
  auto mnt = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "One JSON object (a JSON array without MOUNTPOINT)");
  cmd->add_option("MOUNTPOINT", *mnt, "The mount point (relative, or through links in its parent directories: resolved as ward fuse did)");
  cmd->callback([mnt, json, &exit_code] {
    exit_code = print_status(mnt->empty() ? std::nullopt : std::optional(*mnt), *json);
  });
}

}  // namespace

void add_fuse(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "fuse",
      "Run an unmodified FUSE file system under ward: ward mounts MOUNTPOINT itself (as root; the "
      "file system's name in /proc/mounts is `ward`, type fuse.ward), starts FS-COMMAND with each "
      "`{}` replaced by /dev/fd/N (libfuse3 file systems accept that in place of a mount point) and "
      "relays and checks every FUSE message between the kernel and the file system.\n"
      "Example: ward fuse /mnt/x -- fuse-overlayfs -f -o lowerdir=/a,upperdir=/b,workdir=/c {}\n"
      "Without `{}` the file system mounts itself (libfuse2: bindfs, fuse-zip, fuse2fs; ntfs-3g, "
      "mergerfs, gocryptfs, ...): write MOUNTPOINT in its command as usual; it runs in a private "
      "mount namespace where the mount point is an empty directory until it has mounted; its "
      "FUSE mount(2) of MOUNTPOINT is answered by ward, which puts ward's socket where its "
      "/dev/fuse was (any other mount fails with EPERM), and every fusermount is ward-fusermount "
      "(installed beside ward), which hands the library ward's socket. Once mounted it sees ward's "
      "mount there. Its own mount options (allow_other, ro, fsname) do not reach the kernel: use "
      "ward's options.\n"
      "Example: ward fuse /mnt/x -- bindfs /srv/data /mnt/x\n"
      "File systems that daemonize (no -f) are followed: the file system runs in a PID namespace "
      "under ward, and it has failed only when every one of its processes is gone or has closed "
      "ward's socket, not when its first process exits 0.\n"
      "Ends when the mount is unmounted (umount, fusermount3 -u) or on SIGINT/SIGTERM (ward "
      "unmounts, then ends the file system: it has --exit-timeout to end by itself, then SIGTERM, SIGKILL 3 s later).\n"
      "If the file system exits, dies, misses a deadline or sends a malformed message, ward "
      "restarts it without the applications noticing: the mount stays, node ids and open files "
      "stay valid (ward maps them to the new instance's), and the requests it held are sent again "
      "where that is safe (else answered EIO; docs/fuse.md lists which). Past --restarts within "
      "--restart-window, or if the new instance negotiates INIT differently, ward gives up: what "
      "the file system held is answered with EIO, the mount is detached and ward exits with 3.\n"
      "A file unlinked (or renamed over) while open has no name a restart could find it by: its "
      "descriptors would get ESTALE after one. So ward renames it to "
      ".ward-hidden-<id>-<random> in its directory instead (unless --no-hide-unlinked); such "
      "names never show in the mount and are removed when the file's last descriptor is closed, "
      "when their directory is removed, or when ward ends (left behind only if ward itself is "
      "killed).\n"
      "Sandbox (on unless --no-sandbox): the file system runs in a root of its own that holds "
      "only the system's programs and libraries (/usr, /bin, /lib*: read-only), /etc's passwd, "
      "group, nsswitch.conf, ld.so.cache, localtime, fuse.conf, hosts, resolv.conf, services, ssl/certs "
      "(read-only), /dev/null, zero, full, random, urandom, a /dev/log of ward's (what it sends to "
      "syslog reaches the log), a fresh read-only /proc (its own processes only), an empty /tmp (a 64 MiB tmpfs), "
      "its binary, and the paths it may see: --see (read-write), --see-ro (read-only), and "
      "(unless --no-auto-see) every path its command line names: each word, split at `,` `=` `:` "
      "(so -o lowerdir=/a:/b,upperdir=/c counts), that exists is seen read-write, a directory "
      "itself, a device node itself, a file with its directory (programs replace a file by "
      "renaming over it), a path that does not exist yet with its directory; several on one file "
      "system through their common directory (a rename between two of them must stay on one "
      "mount: fuse-overlayfs's workdir and upperdir); never /, /etc, /dev, /tmp, /home, /root, "
      "/var, /run, /boot, the system's directories or anything below /proc, /sys, /dev (name "
      "those with --see). Everything else of the host is absent: the file system gets ENOENT. "
      "In the sandbox mount(2) fails (EPERM) except its own FUSE mount, device nodes it makes "
      "cannot be opened (its paths are nodev), its hostname and SysV IPC are its own, bpf, "
      "perf_event_open, syslog, fanotify, keyrings, swap, acct and quotactl are refused, and it "
      "has none of the capabilities that reach the host's kernel (module, raw I/O, boot, time, "
      "network administration, ptrace, ...); it still runs as root with CAP_SYS_ADMIN, "
      "CAP_DAC_OVERRIDE, CAP_CHOWN, CAP_MKNOD (docs/fuse.md, \"Sandbox\", says what that leaves), unless "
      "--user runs it as an ordinary user with no capabilities, which makes the sandbox a boundary "
      "against a hostile file system (one that must serve every user's files, a pass-through, needs root). "
      "No file system, sandboxed or not, may push input into a terminal (TIOCSTI). To diagnose a file system that fails for want of a path: --log - "
      "prints what it sees; strace -f -e trace=%file on ward shows the ENOENT; add --see PATH, "
      "or try --no-sandbox to confirm.\n"

      "Background: ward returns once the mount serves requests (INIT answered) and keeps serving "
      "in the background (its own session; stdin, stdout and stderr /dev/null, except stderr with "
      "`--log -`); before that, errors are printed and ward exits with their code. --foreground "
      "(-f) stays in the foreground until the mount ends. Either way `ward fuse status MOUNTPOINT` "
      "shows the mount's state, restarts and their causes (status files in /run/ward/fuse, or "
      "$WARD_FUSE_STATUS_DIR); unmounting ends the background ward.\n"
      "A mount point literally named `status` must be written ./status.\n"
      "Exit codes: 0 unmounted or stopped by a signal (background: the mount serves); 1 bad "
      "setup (not root, mount failed, FS-COMMAND cannot run, another ward fuse serves "
      "MOUNTPOINT, a --see path missing, a --fs-stdin that cannot be read or is over 1 MiB, not "
      "serving within --init-timeout + --exit-timeout + 10 s); 2 bad usage (an unknown "
      "option, no MOUNTPOINT or FS-COMMAND, a --user that names no user); 3 the file system failed (background: before it served).");
  add_status(*cmd, exit_code);
  auto opts = std::make_shared<fuse::Options>();
  auto timeout_ms = std::make_shared<long>(30'000);
  auto init_ms = std::make_shared<long>(10'000);
  auto exit_ms = std::make_shared<long>(60'000);
  auto log_path = std::make_shared<std::string>();
  auto window_ms = std::make_shared<long>(60'000);
  cmd->add_option("--restarts", opts->max_restarts,
                  "Restarts allowed within --restart-window before ward gives up; 0 never restarts")
      ->default_val(10)->check(CLI::Range(0u, 1'000'000u));
  cmd->add_option("--restart-window", *window_ms, "Milliseconds over which --restarts are counted")
      ->default_val(60'000)->check(CLI::Range(1L, 86'400'000L));
  auto journal_mib = std::make_shared<std::size_t>(256);
  cmd->add_flag("--journal", opts->journal,
                "Keep every request that changed the file system (and every id it handed out) since the "
                "mount, and replay them into each restarted instance: for file systems that hold state "
                "in memory (fuse-zip writes its archive at unmount). Costs memory: the data of every write");
  cmd->add_option("--journal-limit", *journal_mib,
                  "MiB the journal may hold; past it the journal is dropped (logged) and restarts find "
                  "files by name only")
      ->default_val(256)->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  auto rio_mib = std::make_shared<std::size_t>(64);
  cmd->add_flag("--rio", opts->rio,
                "Keep every acknowledged WRITE in a Rio heap (write-protected, private, in /dev/shm) until "
                "a FLUSH, FSYNC or RELEASE of its file handle succeeds, and write it again into a "
                "restarted file system: for file systems that hold writes until then (write-back "
                "caches). Not with --journal");
  cmd->add_flag("--hide-unlinked,!--no-hide-unlinked", opts->hide_unlinked,
                "Keep a file unlinked (or renamed over) while open under a hidden name in its directory "
                "until its last close, so that it survives a restart of the file system (the "
                "default; --no-hide-unlinked: removed at once, its descriptors get ESTALE after a "
                "restart)");
  cmd->add_option("--rio-size", *rio_mib, "MiB of kept writes --rio may hold; past it ward stops keeping (logged)")
      ->default_val(64)->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  cmd->add_option("--snapshot", opts->snapshots,
                  "A file or directory the file system writes in place (an image: fuse2fs's ext4 file; a "
                  "block or cipher directory: cryfs, gocryptfs): copied at the start and put back before "
                  "each journal replay (a directory: its whole tree; no links followed, no devices, fifos "
                  "or sockets, no extended attributes). Repeatable; needs --journal")
      ->allow_extra_args(false);  // one file per --snapshot: what follows is MOUNTPOINT
  cmd->add_option("--request-timeout", *timeout_ms,
                  "Milliseconds the file system has to answer a request; a miss is a hang")
      ->default_val(30'000)->check(CLI::Range(1L, 86'400'000L));
  cmd->add_option("--init-timeout", *init_ms, "Milliseconds the file system has to answer INIT")
      ->default_val(10'000)->check(CLI::Range(1L, 86'400'000L));
  cmd->add_option("--exit-timeout", *exit_ms,
                  "Milliseconds the file system has to end by itself once its mount is gone (many write what "
                  "they held only then: fuse-zip its archive, s3backer its block cache); then SIGTERM, and "
                  "SIGKILL 3 s later")
      ->default_val(60'000)->check(CLI::Range(0L, 600'000L));
  cmd->add_flag("--allow-other", opts->allow_other, "Mount option allow_other: other users may use the mount");
  cmd->add_flag("--default-permissions", opts->default_permissions,
                "Mount option default_permissions: the kernel checks file modes");
  cmd->add_option("--see", opts->see, "A host path the file system may see, read-write (repeatable; see Sandbox)")
      ->type_name("PATH")->allow_extra_args(false);
  cmd->add_option("--see-ro", opts->see_ro, "A host path the file system may see, read-only (repeatable; wins over the auto rule)")
      ->type_name("PATH")->allow_extra_args(false);
  auto no_sandbox = std::make_shared<bool>(false);
  auto no_auto = std::make_shared<bool>(false);
  cmd->add_flag("--no-auto-see", *no_auto, "Do not see the paths the command line names: only --see and --see-ro");
  cmd->add_option("--max-tasks", opts->max_tasks,
                  "At most this many processes and threads in the file system at once (a pids cgroup "
                  "below ward's own; 0: no bound). Where none can be made, the log says so and the "
                  "file system runs unbounded")
      ->capture_default_str();
  // Default: Options::kHalfOfMemory (a sentinel launch() turns into half of this machine's memory).
  cmd->add_option("--max-memory", opts->max_memory,
                  "At most this much memory for the file system (a memory cgroup below ward's own: its "
                  "allocations and the page cache charged to it), e.g. 512M or 2G; over it the kernel kills "
                  "it and ward restarts it. 0: no bound. Default: half of this machine's memory. Where no "
                  "bound can be made, the log says so and the file system runs unbounded")
      ->transform(CLI::AsSizeValue(false));
  auto user_spec = std::make_shared<std::string>();
  cmd->add_option("--user", *user_spec,
                  "Run the file system as this user (NAME, UID, NAME:GROUP or UID:GID; a UID the user database "
                  "does not know needs its GID) instead of root: it takes the user's ids and login groups once "
                  "its sandbox is built and holds no capability (no_new_privs: no set-user-id program gives "
                  "root back), so it reaches only what that user may of what it sees. The user must be able "
                  "to read (and write) its backing paths: ward refuses to mount when it may not read a --see, "
                  "--see-ro or command-line path. Its HOME, USER and LOGNAME are the user's")
      ->type_name("USER[:GROUP]");
  cmd->add_flag("--no-sandbox", *no_sandbox, "The file system sees the host's whole tree (as root: everything)")
      ->excludes("--see")->excludes("--see-ro")->excludes("--no-auto-see");
  cmd->add_option("--log", *log_path,
                  "Append ward's events (failures, restarts, unmount) and the file system's own output (stdout, "
                  "stderr and, sandboxed, what it sends to syslog) to this file; `-` is stderr. Without it the "
                  "file system's output goes to stderr (in the background: until it serves). Each of its lines "
                  "is led by `ward fuse MOUNTPOINT: fs: `, and a byte that is not printable text is written as \\xHH");
  auto stdin_path = std::make_shared<std::string>();
  cmd->add_option("--fs-stdin", *stdin_path,
                  "What the file system reads on its stdin, each instance the same from the start (a password "
                  "a file system asks for there, once per start): this file's bytes, read once before mounting "
                  "(at most 1 MiB); `-` is ward's stdin, read to its end. Without it the file system's stdin is "
                  "/dev/null: a restarted instance has nobody to ask")
      ->type_name("FILE");
  auto foreground = std::make_shared<bool>(false);
  cmd->add_flag("-f,--foreground", *foreground,
                "Stay in the foreground until the mount ends (default: return once it serves)");
  cmd->add_option("MOUNTPOINT", opts->mountpoint, "Directory to mount on");
  cmd->add_option("FS-COMMAND", opts->command,
                  "After `--`: the file system's command line, `{}` where its mount point goes (no `{}`: it mounts itself on MOUNTPOINT, see above)");
  cmd->callback([cmd, opts, foreground, timeout_ms, init_ms, exit_ms, window_ms, journal_mib, rio_mib, log_path,
                 stdin_path, no_sandbox, no_auto, user_spec, &exit_code] {
    opts->rio_size = *rio_mib << 20;
    opts->sandbox = !*no_sandbox;
    opts->auto_see = !*no_auto;
    if (cmd->got_subcommand("status")) return;
    if (opts->mountpoint.empty() || opts->command.empty()) {
      std::fprintf(stderr, "ward fuse: MOUNTPOINT and `-- FS-COMMAND` are required (ward fuse --help)\n");
      exit_code = 2;
      return;
    }
    if (!user_spec->empty()) {
      auto user = fuse::find_user(*user_spec);
      if (!user) {
        std::fprintf(stderr, "ward fuse: --user: %s\n", user.error().detail.c_str());
        exit_code = 2;
        return;
      }
      opts->user = std::move(*user);
    }
    opts->journal_limit = *journal_mib << 20;
    opts->restart_window = std::chrono::milliseconds(*window_ms);
    opts->request_timeout = std::chrono::milliseconds(*timeout_ms);
    opts->init_timeout = std::chrono::milliseconds(*init_ms);
    opts->exit_timeout = std::chrono::milliseconds(*exit_ms);
    int log_fd = -1;
    if (*log_path == "-") {
      log_fd = 2;
    } else if (!log_path->empty()) {
      log_fd = ::open(log_path->c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
      if (log_fd < 0) {
        std::perror(("ward fuse: --log " + *log_path).c_str());
        exit_code = 1;
        return;
      }
    }
    if (!stdin_path->empty()) {
      auto input = read_fs_input(*stdin_path);
      if (!input) {
        std::fprintf(stderr, "ward fuse: --fs-stdin %s: %s\n", stdin_path->c_str(), input.error().detail.c_str());
        if (log_fd > 2) ::close(log_fd);
        exit_code = 1;
        return;
      }
      opts->fs_input = std::move(*input);
    }
    opts->log_fd = log_fd;
    // The file system's own output goes with ward's events when there is a log, else to stderr.
    opts->fs_output_fd = log_fd >= 0 ? log_fd : 2;
    // SIGINT/SIGTERM arrive as readable data: the relay unmounts and returns normally. Blocked
    // before the fork so that neither process has a moment with the default action.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    ::sigprocmask(SIG_BLOCK, &stop, nullptr);

    // Background: the first process waits for a byte on `ready` (sent once INIT is answered).
    // The background ward keeps its working directory: a restart runs FS-COMMAND again, and its
    // relative paths must still mean what they meant.
    int ready = -1;
    if (!*foreground) {
      int p[2];
      if (::pipe2(p, O_CLOEXEC) != 0) {
        std::perror("ward fuse: pipe");
        exit_code = 1;
        return;
      }
      std::fflush(nullptr);
      pid_t child = ::fork();
      if (child < 0) {
        std::perror("ward fuse: fork");
        exit_code = 1;
        return;
      }
      if (child > 0) {
        ::close(p[1]);
        exit_code = wait_until_serving(child, p[0], *opts);
        ::close(p[0]);
        if (log_fd > 2) ::close(log_fd);
        return;
      }
      ::close(p[0]);
      ready = p[1];
      ::setsid();  // no terminal's signals, no hangup when the shell goes
      if (int null = ::open("/dev/null", O_RDWR | O_CLOEXEC); null >= 0) {
        ::dup2(null, 0);
        ::close(null);
      }
    }

    std::optional<fuse::StatusFile> status;
    if (::geteuid() == 0) {  // else run_fuse says that it needs root
      auto s = fuse::StatusFile::create(fuse::status_dir(), *opts);
      if (!s) {
        std::fprintf(stderr, "ward fuse: %s\n", s.error().detail.c_str());
        exit_code = 1;
        return;
      }
      status.emplace(std::move(*s));
    }
    bool status_error_said = false;
    opts->on_event = [&](const fuse::Event& e) {
      if (status) {
        status->on_event(e);
        if (!status->error().empty() && !status_error_said && log_fd >= 0) {
          std::string line = "ward fuse: status file: " + status->error() + "\n";
          (void)!::write(log_fd, line.data(), line.size());
          status_error_said = true;
        }
      }
      if (e.kind == fuse::Event::Kind::ready && ready >= 0) {
        // Serving: the first process may go, and this one lets go of its terminal.
        // The first process may be gone (killed): no SIGPIPE for that. The signal is blocked for
        // the write and a pending one consumed, without touching the disposition the file
        // system's next launch would inherit.
        sigset_t pipe_set, old_set;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
        if (::write(ready, "r", 1) < 0 && errno == EPIPE) {
          timespec zero{};
          (void)::sigtimedwait(&pipe_set, nullptr, &zero);
        }
        ::pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
        ::close(std::exchange(ready, -1));
        // stderr: the --log file if there is one (ward's last words at its end go there), else
        // nothing. The file system's output follows (it is written to fd 2 by number).
        if (int null = ::open("/dev/null", O_RDWR | O_CLOEXEC); null >= 0) {
          ::dup2(null, 1);
          if (log_fd > 2) ::dup2(log_fd, 2);
          else if (log_fd != 2) ::dup2(null, 2);
          ::close(null);
        }
      }
    };
    opts->stop_fd = ::signalfd(-1, &stop, SFD_CLOEXEC);
    auto r = fuse::run_fuse(*opts);
    if (status) status->remove();
    if (ready >= 0) ::close(ready);
    if (opts->stop_fd >= 0) ::close(opts->stop_fd);
    if (log_fd > 2) ::close(log_fd);
    if (r) {
      exit_code = 0;
      return;
    }
    const bool logged = !log_path->empty() && *log_path != "-";
    std::fprintf(stderr, "ward fuse: %s%s\n", r.error().message().c_str(),
                 logged ? ("; the file system's own output is in " + *log_path).c_str() : "");
    exit_code = r.error().kind == Errc::misuse || r.error().kind == Errc::load_failed ? 1 : 3;
  });
}

}  // namespace ward::cli
