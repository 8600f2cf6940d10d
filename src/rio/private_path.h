// Private files and directories in shared places (/dev/shm, /tmp): how ward creates and reopens
// them so that another local user can neither read them nor make ward use something they planted.
//
// Contract, independent of fs.protected_regular / fs.protected_symlinks:
//   * ward creates exclusively (mkdir, mkdtemp, O_EXCL) and never follows a symbolic link in the
//     last component of a path it creates or reopens (O_NOFOLLOW).
//   * it reopens only what the caller could have created: owned by the effective uid, with no
//     group or other permission bits, of the expected type (and, for files, one link: a hard
//     link planted elsewhere is not ours to trust).
//   * anything else is refused with Errc::misuse and a detail naming the path and what is wrong;
//     ward never "repairs" (chmod/chown/unlink) something it did not create.
// Names in a shared directory are predictable, so another user can still deny service by
// planting one first; the error then says who owns the thing in the way.
// All functions are thread-safe (no shared state); the fds returned are O_CLOEXEC and owned by
// the caller.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "ward/core/error.h"

namespace ward::rio {

// Creates `dir` with mode 0700 if it does not exist (its parent must), then verifies, without
// following a link, that it is a directory owned by the caller with no group/other access.
[[nodiscard]] Result<void> ensure_private_dir(const std::filesystem::path& dir);

// A new directory `parent/prefix-XXXXXX`, created exclusively with mode 0700 (mkdtemp).
[[nodiscard]] Result<std::filesystem::path> make_private_dir(const std::filesystem::path& parent, std::string_view prefix);

// The checks on an opened file: regular, owned by the caller, no group/other bits, one link.
// `st` is the fstat of the descriptor (not of the path: the descriptor is what will be used).
[[nodiscard]] Result<void> check_private_file(const struct stat& st, const std::filesystem::path& path);

// The checks on the directory a private file lives in: owned by the caller or root, and not
// writable by group/other unless sticky (so nobody else can rename or replace what is in it).
[[nodiscard]] Result<void> check_trusted_dir(const std::filesystem::path& dir);

}  // namespace ward::rio
