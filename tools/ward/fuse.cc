// `ward fuse`: mounts a FUSE file system through ward's relay (include/ward/fuse/relay.h).
#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>

#include "commands.h"
#include "ward/fuse/relay.h"

namespace ward::cli {

void add_fuse(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "fuse",
      "Run an unmodified FUSE file system under ward: ward mounts MOUNTPOINT itself (as root; the "
      "file system's name in /proc/mounts is `ward`, type fuse.ward), starts FS-COMMAND with each "
      "`{}` replaced by /dev/fd/N (libfuse3 file systems accept that in place of a mount point) and "
      "relays and checks every FUSE message between the kernel and the file system.\n"
      "Example: ward fuse /mnt/x -- fuse-overlayfs -f -o lowerdir=/a,upperdir=/b,workdir=/c {}\n"
      "Without `{}` the file system mounts itself (libfuse2: bindfs, fuse-zip, fuse2fs, ...): "
      "write MOUNTPOINT in its command as usual; it runs in a private mount namespace where the "
      "mount point is an empty directory, mount(2) fails with EPERM and fusermount is "
      "ward-fusermount (installed beside ward), which hands libfuse ward's socket. Its own mount "
      "options (allow_other, ro, fsname) do not reach the kernel: use ward's options.\n"
      "Example: ward fuse /mnt/x -- bindfs /srv/data /mnt/x\n"
      "File systems that daemonize (no -f) are followed: the file system runs in a PID namespace "
      "under ward, and it has failed only when every one of its processes is gone or has closed "
      "ward's socket, not when its first process exits 0.\n"
      "Ends when the mount is unmounted (umount, fusermount3 -u) or on SIGINT/SIGTERM (ward "
      "unmounts, then ends the file system: SIGTERM, SIGKILL after --exit-timeout).\n"
      "If the file system exits, dies, misses a deadline or sends a malformed message, ward "
      "restarts it without the applications noticing: the mount stays, node ids and open files "
      "stay valid (ward maps them to the new instance's), and the requests it held are sent again "
      "where that is safe (else answered EIO; docs/fuse.md lists which). Past --restarts within "
      "--restart-window, or if the new instance negotiates INIT differently, ward gives up: what "
      "the file system held is answered with EIO, the mount is detached and ward exits with 3.\n"
      "Sandbox (on unless --no-sandbox): the file system runs in a root of its own that holds "
      "only the system's programs and libraries (/usr, /bin, /lib*: read-only), /etc's passwd, "
      "group, nsswitch.conf, ld.so.cache, localtime, fuse.conf (read-only), /dev/null, zero, full, "
      "random, urandom, a fresh /proc (its own processes only), an empty /tmp (a 64 MiB tmpfs), "
      "its binary, and the paths it may see: --see (read-write), --see-ro (read-only), and "
      "(unless --no-auto-see) every path its command line names: each word, split at `,` `=` `:` "
      "(so -o lowerdir=/a:/b,upperdir=/c counts), that exists is seen read-write, a directory "
      "itself, a device node itself, a file with its directory (programs replace a file by "
      "renaming over it), a path that does not exist yet with its directory; several on one file "
      "system through their common directory (a rename between two of them must stay on one "
      "mount: fuse-overlayfs's workdir and upperdir); never /, /etc, /dev, /tmp, /home, /root, "
      "/var, /run, /boot, the system's directories or anything below /proc, /sys, /dev (name "
      "those with --see). Everything else of the host is absent: the file system gets ENOENT. "
      "In the sandbox mount(2) fails (EPERM) and the file system has no CAP_MKNOD, "
      "CAP_DAC_READ_SEARCH, CAP_SYS_MODULE, CAP_SYS_RAWIO; it still runs as root (docs/fuse.md "
      "says what that leaves). To diagnose a file system that fails for want of a path: --log - "
      "prints what it sees; strace -f -e trace=%file on ward shows the ENOENT; add --see PATH, "
      "or try --no-sandbox to confirm.\n"
      "Exit codes: 0 unmounted or stopped by a signal; 1 bad usage or setup (not root, mount "
      "failed, FS-COMMAND cannot run, a --see path missing); 3 the file system failed.");
  auto opts = std::make_shared<fuse::Options>();
  auto timeout_ms = std::make_shared<long>(30'000);
  auto init_ms = std::make_shared<long>(10'000);
  auto exit_ms = std::make_shared<long>(3'000);
  auto log_path = std::make_shared<std::string>();
  auto window_ms = std::make_shared<long>(60'000);
  cmd->add_option("--restarts", opts->max_restarts,
                  "Restarts allowed within --restart-window before ward gives up; 0 never restarts")
      ->default_val(10)->check(CLI::Range(0u, 1'000'000u));
  cmd->add_option("--restart-window", *window_ms, "Milliseconds over which --restarts are counted")
      ->default_val(60'000)->check(CLI::Range(1L, 86'400'000L));
  cmd->add_option("--request-timeout", *timeout_ms,
                  "Milliseconds the file system has to answer a request; a miss is a hang")
      ->default_val(30'000)->check(CLI::Range(1L, 86'400'000L));
  cmd->add_option("--init-timeout", *init_ms, "Milliseconds the file system has to answer INIT")
      ->default_val(10'000)->check(CLI::Range(1L, 86'400'000L));
  cmd->add_option("--exit-timeout", *exit_ms,
                  "Milliseconds between SIGTERM and SIGKILL when ending the file system")
      ->default_val(3'000)->check(CLI::Range(0L, 600'000L));
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
  cmd->add_flag("--no-sandbox", *no_sandbox, "The file system sees the host's whole tree (as root: everything)")
      ->excludes("--see")->excludes("--see-ro")->excludes("--no-auto-see");
  cmd->add_option("--log", *log_path, "Append ward's events (failures, restarts, unmount) to this file; `-` is stderr");
  cmd->add_option("MOUNTPOINT", opts->mountpoint, "Directory to mount on")->required();
  cmd->add_option("FS-COMMAND", opts->command,
                  "After `--`: the file system's command line, `{}` where its mount point goes (no `{}`: it mounts itself on MOUNTPOINT, see above)")
      ->required();
  cmd->callback([opts, timeout_ms, init_ms, exit_ms, window_ms, log_path, no_sandbox, no_auto, &exit_code] {
    opts->sandbox = !*no_sandbox;
    opts->auto_see = !*no_auto;
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
    opts->log_fd = log_fd;
    // SIGINT/SIGTERM arrive as readable data: the relay unmounts and returns normally.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    ::sigprocmask(SIG_BLOCK, &stop, nullptr);
    opts->stop_fd = ::signalfd(-1, &stop, SFD_CLOEXEC);
    auto r = fuse::run_fuse(*opts);
    if (opts->stop_fd >= 0) ::close(opts->stop_fd);
    if (log_fd > 2) ::close(log_fd);
    if (r) {
      exit_code = 0;
      return;
    }
    std::fprintf(stderr, "ward fuse: %s\n", r.error().message().c_str());
    exit_code = r.error().kind == Errc::misuse || r.error().kind == Errc::load_failed ? 1 : 3;
  });
}

}  // namespace ward::cli
