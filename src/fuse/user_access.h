// Whether the user a file system runs as (`ward fuse --user`) can read the paths it is given,
// checked before anything is mounted (docs/fuse.md, "Running as a user").
//
// Why: a file system that cannot read its backing path fails in its own words or, worse, mounts
// and answers EACCES to everything (bindfs does): a mount that looks alive and serves nothing.
//
// Contract. check_user_reaches(o) returns {} when o.user is unset, or when the user may read each
// path of o.see and o.see_ro and, unless o.auto_see is off, each existing path the command names
// (sandbox.h: named_paths); directories need read and search. In the sandbox the file system
// reaches a shown path through directories ward makes, so only the path itself is judged (its
// mode and ACL, against the user's ids and groups); without the sandbox the whole path, as the
// host resolves it. The first path the user cannot read is an Errc::misuse error naming the user,
// the path, where it came from, and the errno. The check runs in a child process that takes the
// user's ids (ward's own ids never change), bounded by a deadline (a path on a hung mount):
// past it the child is killed and the check is an Errc::hung error. Write access is not checked:
// a file system may be meant to read only.
#pragma once

#include "ward/core/error.h"
#include "ward/fuse/relay.h"

namespace ward::fuse::detail {

[[nodiscard]] Result<void> check_user_reaches(const Options& o);

}  // namespace ward::fuse::detail
