// The file system's view of the host (docs/fuse.md, "Sandbox"): a minimal root in its private
// mount namespace, holding only what it needs to run plus the paths it is allowed to see.
//
// Contract. plan_sandbox() runs in ward (it may allocate, stat and readlink host paths) and turns
// Options::see / see_ro / auto_see and the command into a list of operations; run_sandbox() runs
// that list in the namespace's init, after the fork, with async-signal-safe calls only and no
// allocation. The list builds a tmpfs root over the mount point's path (ward's own mount there is
// detached in the FS's namespace first: it is never looked up, in ward or in the child, because a
// lookup before INIT would wait for the INIT that only this FS can send), binds into it the
// system's program directories (/usr, /bin, /lib*: read-only), a few /etc files, /dev's harmless
// nodes, the FS's binary (read-only), and each seen path at its own host path; mounts a fresh /proc
// (the FS's PID namespace only) and an empty /tmp; then pivot_roots into it, detaches the host's
// tree and binds ward's syslog socket at /dev/log (a socket that lives in this tmpfs only: nothing
// of it is left on the host), so that everything else is absent (ENOENT), not merely unreadable. A self-mounting FS also
// gets its mount point (an empty tmpfs), ward-fusermount over each fusermount, and /dev/fuse.
//
// Path resolution never follows a path into the mount point (its lookup would deadlock, above):
// a seen path that is, or lies below, the mount point is an error (explicit) or skipped (auto).
// Not thread-safe in itself; plan and run on the launching thread / the child.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ward/core/error.h"
#include "ward/fuse/relay.h"

namespace ward::fuse::detail {

struct SandboxOp {
  enum Kind : std::uint8_t {
    detach,   // umount2(a, MNT_DETACH)
    tmpfs,    // tmpfs on a, options b
    cover,    // cover_mountpoint(a): hides what a directory holds, if anything
    mkdir,    // a and every missing parent (mode 0755)
    mkfile,   // an empty file a (a bind target), parents made
    symlink,  // a symlink at a whose text is b
    bind,     // bind b on a (not recursive)
    bind_ro,  // the same, then remounted read-only
    bind_nodev,  // the same, then remounted nodev, nosuid: nodes made there cannot be opened as devices
    proc,     // a fresh proc on a
    pivot,    // pivot_root into a; the old root detached
    socket,   // bind(2) the socket at descriptor b (decimal) to path a, mode 0666
    root_ro,  // "/" remounted read-only
    chdir,    // chdir(a), else chdir("/")
    kKinds
  };
  Kind kind;
  std::string a, b;
};

struct SandboxPlan {
  std::vector<SandboxOp> ops;
  std::string exec_path;          // the FS's binary, resolved in the host ("" : search PATH)
  std::vector<std::string> seen;  // "rw PATH" / "ro PATH", what the FS sees beyond the system
};

// `mountpoint` is absolute and canonical up to its last name (launch.cc: absolute_mountpoint).
// For a self-mounting FS, `standin` and `fusermounts` are ward-fusermount and what it covers.
// `syslog_fd`: the descriptor (in the child) of an unbound datagram socket of ward's that the
// child binds at the sandbox's /dev/log, once pivoted (-1: no /dev/log; fs_output.h).
[[nodiscard]] Result<SandboxPlan> plan_sandbox(const Options& options, const std::string& mountpoint,
                                               bool self_mount, const std::string& standin,
                                               const std::vector<std::string>& fusermounts, int syslog_fd);

// The existing paths `command`'s arguments name, as the auto rule reads them (each piece of an
// argument without `{}`), absolute and canonical, before the rule widens files to their
// directories: what the file system will open.
[[nodiscard]] Result<std::vector<std::string>> named_paths(const std::vector<std::string>& command,
                                                           const std::string& mountpoint);

// A --see / --see-ro path (`opt` names the option in errors), absolute and canonical; refused in
// words (Errc::misuse) when it is missing, the mount point or below it, "/", or in /proc.
[[nodiscard]] Result<std::string> resolve_seen(const std::string& opt, const std::string& path,
                                               const std::string& mountpoint);

// In the child: runs the plan. Returns -1 with errno set and `*failed` the index of the operation
// that failed; 0 when done. Async-signal-safe, allocates nothing.
int run_sandbox(const SandboxPlan& plan, int* failed);

// A self-mounting file system's mount point in its namespace: if the directory holds anything
// (what lies under ward's mount on the host), an empty tmpfs covers it, so that the file system
// finds the empty directory it mounts on; an empty one is left a plain directory, as it is for a
// direct mount (rclone refuses a mount point that already is one). 0, or -1 with errno. Async-
// signal-safe (it runs in the forked child): no allocation.
int cover_mountpoint(const char* dir);

// Words for the operation `op` failing (the parent's error message).
[[nodiscard]] std::string describe_failure(const SandboxOp& op);

}  // namespace ward::fuse::detail
