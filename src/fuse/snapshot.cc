// Snapshots of a file system's storage, a file or a directory tree; the contract is in snapshot.h.
#include "fuse/snapshot.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "core/unique_fd.h"

namespace ward::fuse::detail {

struct Snapshot::Tree {
  enum class Kind { dir, file, symlink, hardlink };
  struct Entry {
    Kind kind = Kind::file;
    std::string name;
    struct stat st {};                // owner, mode and times as found
    std::uint64_t off = 0, size = 0;  // a file: where its bytes are in the copy
    std::string target;               // a symlink's target; a hard link: the first name's path from the top
    std::vector<Entry> children;      // a directory's
  };
  struct stat top {};
  std::vector<Entry> entries;
};

namespace {

using Tree = Snapshot::Tree;

// Copies up to `len` bytes of `from` at `in` to `to` at `out` (fewer at `from`'s end). Returns 0
// or an errno; `copied`, if given, receives how many bytes were copied.
int copy_range(int from, loff_t in, int to, loff_t out, std::uint64_t len, std::uint64_t* copied = nullptr) {
  std::uint64_t done = 0;
  auto finish = [&](int e) {
    if (copied) *copied = done;
    return e;
  };
  while (done < len) {
    ssize_t n = ::copy_file_range(from, &in, to, &out, std::min<std::uint64_t>(len - done, 1 << 30), 0);
    if (n == 0) return finish(0);
    if (n > 0) {
      done += static_cast<std::uint64_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EXDEV && errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL) return finish(errno);
    // No copy_file_range between these two: plain reads and writes from where it stopped.
    char buf[1 << 16];
    while (done < len) {
      ssize_t r = ::pread(from, buf, std::min<std::uint64_t>(sizeof buf, len - done), in);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return finish(errno);
      if (r == 0) return finish(0);
      for (ssize_t put = 0; put < r;) {
        ssize_t w = ::pwrite(to, buf + put, static_cast<std::size_t>(r - put), out);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return finish(errno);
        put += w, out += w;
      }
      in += r, done += static_cast<std::uint64_t>(r);
    }
  }
  return finish(0);
}

// The names in the directory open at `dirfd` (not "." or ".."); an errno on failure.
int names_in(int dirfd, std::vector<std::string>& out) {
  int dup = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return errno;
  DIR* d = ::fdopendir(dup);
  if (!d) {
    int e = errno;
    ::close(dup);
    return e;
  }
  ::rewinddir(d);
  errno = 0;
  while (dirent* e = ::readdir(d))
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) out.emplace_back(e->d_name);
  int e = errno;
  ::closedir(d);
  return e;
}

std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "/" + b; }

// Walks the directory open at `dirfd` (`rel` from the top) into `into`, file bytes appended to
// `copy` at `end`. `links` maps (device, inode) of files with several names to the first name.
struct Taker {
  int copy;
  std::uint64_t end = 0;
  dev_t dev;
  std::string top;
  std::map<std::pair<dev_t, ino_t>, std::string> links;

  Result<void> walk(int dirfd, const std::string& rel, std::vector<Tree::Entry>& into, int depth) {
    auto where = [&](const std::string& name) { return "--snapshot " + top + ": " + join(rel, name); };
    if (depth > Snapshot::kMaxDepth)
      return fail(Errc::misuse, "--snapshot " + top + ": deeper than " + std::to_string(Snapshot::kMaxDepth) + " levels");
    std::vector<std::string> names;
    if (int e = names_in(dirfd, names)) return fail(Errc::load_failed, errno_text("--snapshot " + top + ": listing " + (rel.empty() ? "." : rel), e));
    for (const std::string& name : names) {
      Tree::Entry en;
      en.name = name;
      if (::fstatat(dirfd, name.c_str(), &en.st, AT_SYMLINK_NOFOLLOW) != 0) return fail(Errc::load_failed, errno_text(where(name), errno));
      if (en.st.st_dev != dev) return fail(Errc::misuse, where(name) + ": a mount point inside the tree");
      const std::string path = join(rel, name);
      if (S_ISDIR(en.st.st_mode)) {
        en.kind = Tree::Kind::dir;
        UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub.valid()) return fail(Errc::load_failed, errno_text(where(name), errno));
        WARD_TRY(walk(sub.get(), path, en.children, depth + 1));
      } else if (S_ISLNK(en.st.st_mode)) {
        en.kind = Tree::Kind::symlink;
        std::string target(static_cast<std::size_t>(en.st.st_size) + 1, '\0');
        ssize_t n = ::readlinkat(dirfd, name.c_str(), target.data(), target.size());
        if (n < 0 || static_cast<std::size_t>(n) >= target.size())
          return fail(Errc::load_failed, n < 0 ? errno_text(where(name), errno) : where(name) + ": its target changed while read");
        en.target = target.substr(0, static_cast<std::size_t>(n));
      } else if (S_ISREG(en.st.st_mode)) {
        std::string* first = nullptr;  // the name this file was seen under first, if it has several
        if (en.st.st_nlink > 1) {
          auto [it, fresh] = links.try_emplace({en.st.st_dev, en.st.st_ino}, path);
          if (!fresh) first = &it->second;
        }
        if (first) {
          en.kind = Tree::Kind::hardlink;
          en.target = *first;
        } else {
          UniqueFd f(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
          if (!f.valid()) return fail(Errc::load_failed, errno_text(where(name), errno));
          en.off = end;
          if (int e = copy_range(f.get(), 0, copy, static_cast<loff_t>(end), UINT64_MAX, &en.size))
            return fail(Errc::load_failed, errno_text(where(name) + ": copying", e));
          end += en.size;
        }
      } else {
        return fail(Errc::misuse, where(name) + ": not a directory, regular file or symbolic link (a device, fifo or socket is not copied)");
      }
      into.push_back(std::move(en));
    }
    return {};
  }
};

// Removes everything in the directory open at `dirfd`, never following a link. `rel` names it.
Result<void> empty_dir(int dirfd, const std::string& top, const std::string& rel, int depth) {
  if (depth > Snapshot::kMaxDepth)
    return fail(Errc::load_failed, "restoring " + top + ": the tree is deeper than " + std::to_string(Snapshot::kMaxDepth) + " levels");
  std::vector<std::string> names;
  if (int e = names_in(dirfd, names)) return fail(Errc::load_failed, errno_text("restoring " + top + ": listing " + (rel.empty() ? "." : rel), e));
  for (const std::string& name : names) {
    if (::unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT) continue;
    if (errno != EISDIR && errno != EPERM) return fail(Errc::load_failed, errno_text("restoring " + top + ": removing " + join(rel, name), errno));
    UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub.valid()) return fail(Errc::load_failed, errno_text("restoring " + top + ": " + join(rel, name), errno));
    WARD_TRY(empty_dir(sub.get(), top, join(rel, name), depth + 1));
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0)
      return fail(Errc::load_failed, errno_text("restoring " + top + ": removing " + join(rel, name), errno));
  }
  return {};
}

// Owner, then mode (a chown clears set-id bits), then times, of what `fd` has open.
int set_meta(int fd, const struct stat& st) {
  if (::fchown(fd, st.st_uid, st.st_gid) != 0 || ::fchmod(fd, st.st_mode & 07777) != 0) return errno;
  const timespec t[2] = {st.st_atim, st.st_mtim};
  return ::futimens(fd, t) == 0 ? 0 : errno;
}

// Owner and times of the symbolic link `name` in `dirfd` (a link has no mode of its own).
int set_link_meta(int dirfd, const char* name, const struct stat& st) {
  if (::fchownat(dirfd, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0) return errno;
  const timespec t[2] = {st.st_atim, st.st_mtim};
  return ::utimensat(dirfd, name, t, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : errno;
}

// Builds `entries` in the directory open at `dirfd` (`rel` from the top, open at `topfd`).
Result<void> build(int topfd, int dirfd, const std::string& top, const std::string& rel, const std::vector<Tree::Entry>& entries, int copy) {
  for (const Tree::Entry& en : entries) {
    const std::string path = join(rel, en.name);
    auto failed = [&](const std::string& step, int e) { return fail(Errc::load_failed, errno_text("restoring " + top + ": " + step + " " + path, e)); };
    const char* name = en.name.c_str();
    switch (en.kind) {
      case Tree::Kind::dir: {
        if (::mkdirat(dirfd, name, 0700) != 0) return failed("mkdir", errno);
        UniqueFd sub(::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub.valid()) return failed("open", errno);
        WARD_TRY(build(topfd, sub.get(), top, path, en.children, copy));
        if (int e = set_meta(sub.get(), en.st)) return failed("setting owner, mode and times of", e);
        break;
      }
      case Tree::Kind::file: {
        UniqueFd f(::openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!f.valid()) return failed("create", errno);
        if (int e = copy_range(copy, static_cast<loff_t>(en.off), f.get(), 0, en.size)) return failed("copying into", e);
        if (int e = set_meta(f.get(), en.st)) return failed("setting owner, mode and times of", e);
        break;
      }
      case Tree::Kind::symlink:
        if (::symlinkat(en.target.c_str(), dirfd, name) != 0) return failed("symlink", errno);
        if (int e = set_link_meta(dirfd, name, en.st)) return failed("setting owner and times of", e);
        break;
      case Tree::Kind::hardlink:
        // The first name was built earlier in this walk (ward made every component: no links).
        if (::linkat(topfd, en.target.c_str(), dirfd, name, 0) != 0) return failed("link", errno);
        break;
    }
  }
  return {};
}

}  // namespace

Snapshot::Snapshot() = default;
Snapshot::Snapshot(Snapshot&& o) noexcept
    : path_(std::move(o.path_)), copy_(std::exchange(o.copy_, -1)), tree_(std::move(o.tree_)) {}

Snapshot& Snapshot::operator=(Snapshot&& o) noexcept {
  if (this != &o) {
    if (copy_ >= 0) ::close(copy_);
    path_ = std::move(o.path_);
    copy_ = std::exchange(o.copy_, -1);
    tree_ = std::move(o.tree_);
  }
  return *this;
}

Snapshot::~Snapshot() {
  if (copy_ >= 0) ::close(copy_);
}

Result<Snapshot> Snapshot::take(const std::string& path) {
  Snapshot s;
  s.path_ = path;
  // O_NONBLOCK: a fifo at the path would otherwise block the open until someone wrote to it.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid() && errno == ENOENT) return s;  // absent: restore() removes what appears there
  if (!fd.valid()) return fail(Errc::misuse, errno_text("--snapshot " + path, errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
    return fail(Errc::misuse, "--snapshot " + path + ": not a regular file or a directory");
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  s.copy_ = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (s.copy_ < 0) return fail(Errc::load_failed, errno_text("--snapshot " + path + ": an unnamed copy in " + dir, errno));
  if (S_ISREG(st.st_mode)) {
    if (int e = copy_range(fd.get(), 0, s.copy_, 0, UINT64_MAX)) return fail(Errc::load_failed, errno_text("--snapshot " + path + ": copying", e));
    return s;
  }
  s.tree_ = std::make_unique<Tree>();
  s.tree_->top = st;
  Taker t{s.copy_, 0, st.st_dev, path, {}};
  WARD_TRY(t.walk(fd.get(), "", s.tree_->entries, 1));
  return s;
}

Result<void> Snapshot::restore() const {
  if (copy_ < 0) {
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT)
      return fail(Errc::load_failed, errno_text("restoring " + path_ + " (absent at the start)", errno));
    return {};
  }
  if (tree_) {
    UniqueFd top(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!top.valid() && errno == ENOENT && ::mkdir(path_.c_str(), 0700) == 0)
      top = UniqueFd(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!top.valid()) return fail(Errc::load_failed, errno_text("restoring " + path_, errno));
    WARD_TRY(empty_dir(top.get(), path_, "", 1));
    WARD_TRY(build(top.get(), top.get(), path_, "", tree_->entries, copy_));
    if (int e = set_meta(top.get(), tree_->top))
      return fail(Errc::load_failed, errno_text("restoring " + path_ + ": setting its owner, mode and times", e));
    return {};
  }
  UniqueFd fd(::open(path_.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) return fail(Errc::load_failed, errno_text("restoring " + path_, errno));
  int e = ::ftruncate(fd.get(), 0) == 0 ? copy_range(copy_, 0, fd.get(), 0, UINT64_MAX) : errno;
  if (e != 0) return fail(Errc::load_failed, errno_text("restoring " + path_, e));
  return {};
}

}  // namespace ward::fuse::detail
