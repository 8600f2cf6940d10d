#include "ward/fuse/user.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace ward::fuse {
namespace {

// A decimal id below uid_t's -1, or nothing (a name).
std::optional<std::uint32_t> as_id(std::string_view s) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  if (v >= std::numeric_limits<std::uint32_t>::max()) return std::numeric_limits<std::uint32_t>::max();
  return static_cast<std::uint32_t>(v);
}

// The NSS buffers: grown until the entry fits (a group with many members can exceed any guess).
template <typename Entry, typename Lookup>
Result<bool> look_up(Lookup lookup, Entry& entry, std::vector<char>& buf, std::string_view what) {
  buf.resize(4096);
  for (;;) {
    Entry* found = nullptr;
    const int err = lookup(&entry, buf.data(), buf.size(), &found);
    if (err == ERANGE && buf.size() < (std::size_t{1} << 24)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    // ENOENT/ESRCH/EBADF/EPERM: not found, as glibc documents for a missing entry.
    if (found) return true;
    if (err == 0 || err == ENOENT || err == ESRCH || err == EBADF || err == EPERM) return false;
    return fail(Errc::misuse, errno_text("looking up " + std::string(what), err));
  }
}

}  // namespace

Result<User> find_user(std::string_view spec) {
  const auto colon = spec.find(':');
  const std::string_view who = spec.substr(0, colon);
  const std::string_view grp = colon == std::string_view::npos ? std::string_view{} : spec.substr(colon + 1);
  if (who.empty() || (colon != std::string_view::npos && grp.empty()))
    return fail(Errc::misuse, "user \"" + std::string(spec) + "\": write USER, UID, USER:GROUP or UID:GID");
  constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();

  User u;
  passwd pw{};
  std::vector<char> buf;
  const auto uid = as_id(who);
  if (uid && *uid == kNone) return fail(Errc::misuse, "user id " + std::string(who) + " is out of range");
  const std::string who_s(who);
  const bool known = WARD_TRY(look_up(
      [&](passwd* e, char* b, std::size_t n, passwd** r) {
        return uid ? ::getpwuid_r(*uid, e, b, n, r) : ::getpwnam_r(who_s.c_str(), e, b, n, r);
      },
      pw, buf, "user " + who_s));
  if (!known && !uid) return fail(Errc::misuse, "no user named \"" + who_s + "\" on this host");
  u.uid = known ? pw.pw_uid : *uid;
  if (known) {
    u.name = pw.pw_name;
    u.home = pw.pw_dir ? pw.pw_dir : "";
    u.gid = pw.pw_gid;
  }

  if (!grp.empty()) {
    const auto gid = as_id(grp);
    if (gid && *gid == kNone) return fail(Errc::misuse, "group id " + std::string(grp) + " is out of range");
    if (gid) {
      u.gid = *gid;
    } else {
      ::group gr{};
      std::vector<char> gbuf;
      const std::string g(grp);
      const bool found = WARD_TRY(look_up(
          [&](::group* e, char* b, std::size_t n, ::group** r) { return ::getgrnam_r(g.c_str(), e, b, n, r); }, gr,
          gbuf, "group " + g));
      if (!found) return fail(Errc::misuse, "no group named \"" + g + "\" on this host");
      u.gid = gr.gr_gid;
    }
  } else if (!known) {
    return fail(Errc::misuse, "user id " + who_s + " has no entry in the user database, so no primary group: name it (" +
                                  who_s + ":GID)");
  }

  // The groups a login of this user would have; an unknown uid has its one group.
  u.groups = {u.gid};
  if (known) {
    int n = 32;
    std::vector<gid_t> list;
    for (int tries = 0; tries < 8; ++tries) {
      list.resize(static_cast<std::size_t>(n));
      const int want = n;
      if (::getgrouplist(u.name.c_str(), u.gid, list.data(), &n) >= 0) {
        list.resize(static_cast<std::size_t>(n));
        u.groups.assign(list.begin(), list.end());
        break;
      }
      if (n <= want) n = want * 2;  // glibc sets n to the count needed; be safe if it did not
    }
  }
  return u;
}

std::string display_name(const User& user) {
  return user.name.empty() ? "uid " + std::to_string(user.uid) : user.name;
}

}  // namespace ward::fuse
