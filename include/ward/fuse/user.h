// The user a file system runs as under `ward fuse --user` (docs/fuse.md, "Running as a user").
//
// Contract. find_user() resolves "NAME", "UID", "NAME:GROUP" or "UID:GID" against the host's user
// and group databases (NSS) into everything the launch needs after its fork, when it may no longer
// look anything up: the ids, the supplementary groups the user's login would have
// (getgrouplist), and the name and home directory for the file system's HOME, USER and LOGNAME.
// Without ":GROUP" the user's primary group is taken; a numeric uid that the database does not
// know has no primary group, so its group must be named. An unknown name, an id out of range
// (uid_t's -1 is not an id) or a malformed spec is an Errc::misuse error in words. Reads only;
// thread-safe (the reentrant NSS calls).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ward/core/error.h"

namespace ward::fuse {

struct User {
  std::uint32_t uid = 0, gid = 0;
  std::vector<std::uint32_t> groups;  // supplementary groups, the primary one included
  std::string name;                   // "" when the database has no entry for uid
  std::string home;                   // "" likewise
};

[[nodiscard]] Result<User> find_user(std::string_view spec);

// The user in a word for messages: the name, or "uid N" for a uid the database does not know.
[[nodiscard]] std::string display_name(const User& user);

}  // namespace ward::fuse
