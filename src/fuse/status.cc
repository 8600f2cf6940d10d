#include "fuse/status.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "core/read_file.h"
#include "rio/private_path.h"

namespace ward::fuse {
namespace fs = std::filesystem;

namespace {

constexpr const char* kSuffix = ".status";

std::string now_utc() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char b[96];
  std::snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return b;
}

// One value per line: a newline in a path or a detail must not start a line of its own.
std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      ++i;
      out += s[i] == 'n' ? '\n' : s[i];
    } else {
      out += s[i];
    }
  }
  return out;
}

// The word a person reads for each event, and the state it leaves the mount in (nullptr: as it was).
struct EventWords {
  Event::Kind kind;
  const char* name;
  const char* state;
};
constexpr EventWords kEvents[] = {
    {Event::Kind::ready, "ready", "serving"},
    {Event::Kind::failed, "failed", "restarting"},
    {Event::Kind::restarted, "restarted", "serving"},
    {Event::Kind::restart_failed, "restart_failed", "restarting"},
    {Event::Kind::gave_up, "gave_up", "failed"},
    {Event::Kind::unmounted, "unmounted", "unmounted"},
    {Event::Kind::journal_dropped, "journal_dropped", nullptr},
};

// A user's ids in words.
std::string fmt_ids(const User& u) { return "uid " + std::to_string(u.uid) + ", gid " + std::to_string(u.gid); }

// The calling thread's children: under `ward fuse`, the init of the file system's PID namespace.
pid_t first_child() {
  std::ifstream f("/proc/thread-self/children");
  pid_t p = -1;
  f >> p;
  return f ? p : -1;
}

// Opens `dir` (already checked private) without following a link.
Result<int> open_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return fail(Errc::misuse, "ward fuse: " + dir.string() + ": " + std::strerror(errno));
  return fd;
}

// The private directory, made if missing: its parent must be trusted (root's, not writable by
// others), itself 0700 and ours.
Result<void> ensure_dir(const fs::path& dir) {
  const fs::path parent = dir.parent_path();
  if (::mkdir(parent.c_str(), 0700) != 0 && errno != EEXIST)
    return fail(Errc::misuse, "ward fuse: cannot create " + parent.string() + ": " + std::strerror(errno));
  WARD_TRY(rio::check_trusted_dir(parent));
  return rio::ensure_private_dir(dir);
}

// Reads one status file by its name in `dirfd`, with the checks of a private file.
Result<Status> read_file(int dirfd, const fs::path& dir, const std::string& name) {
  const fs::path path = dir / name;
  int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return fail(e == ENOENT ? Errc::load_failed : Errc::misuse, path.string() + ": " + std::strerror(e));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !rio::check_private_file(st, path)) {
    ::close(fd);
    return fail(Errc::misuse, path.string() + " is not a status file ward wrote (not a private regular file)");
  }
  std::string text;
  char b[4096];
  for (ssize_t n; text.size() < (1 << 20) && (n = ::read(fd, b, sizeof b)) > 0;) text.append(b, n);
  ::close(fd);
  Status s;
  s.file = path;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    auto colon = line.find(": ");
    std::string key = line.substr(0, colon);
    std::string value = colon == std::string::npos ? "" : unescape(line.substr(colon + 2));
    if (colon == std::string::npos && !key.empty() && key.back() == ':') key.pop_back();
    if (key == "event") s.events.push_back(value);
    else s.fields.emplace_back(key, value);
  }
  // Stale: the pid is gone, or is another process than the ward that wrote it.
  const std::string pid = s.get("ward_pid"), ticks = s.get("ward_start");
  char* end = nullptr;
  long p = std::strtol(pid.c_str(), &end, 10);
  s.stale = pid.empty() || *end != '\0' || p <= 0 || p > INT_MAX ||
            std::to_string(process_start_ticks(static_cast<pid_t>(p))) != ticks;
  return s;
}

}  // namespace

std::string Status::get(const std::string& key) const {
  for (const auto& [k, v] : fields)
    if (k == key) return v;
  return "";
}

unsigned long long process_start_ticks(pid_t pid) {
  const std::string s = ward::read_file("/proc/" + std::to_string(pid) + "/stat");
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  auto close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(s.substr(close + 1));
  std::string field;
  for (int i = 3; i <= 22 && in >> field; ++i)
    if (i == 22) return std::strtoull(field.c_str(), nullptr, 10);
  return 0;
}

fs::path status_dir() {
  const char* env = std::getenv("WARD_FUSE_STATUS_DIR");
  return env && *env ? fs::path(env) : fs::path("/run/ward/fuse");
}

std::string absolute_mountpoint(const std::string& mnt) {
  fs::path p = fs::path(mnt).lexically_normal();
  std::error_code ec;
  if (p.is_relative()) p = (fs::current_path(ec) / p).lexically_normal();
  std::string s = p.string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  p = s;
  if (p == p.root_path()) return p.string();
  char buf[PATH_MAX];
  if (::realpath(p.parent_path().c_str(), buf) == nullptr) return p.string();
  return (fs::path(buf) / p.filename()).string();
}

std::string status_name(const std::string& abs_mountpoint) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a 64: short, stable, not a secret
  for (unsigned char c : abs_mountpoint) h = (h ^ c) * 1099511628211ull;
  char b[32];
  std::snprintf(b, sizeof b, "%016llx%s", static_cast<unsigned long long>(h), kSuffix);
  return b;
}

Result<Status> read_status(const fs::path& dir, const std::string& mnt) {
  const std::string abs = absolute_mountpoint(mnt);
  int dirfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dirfd < 0 && errno == ENOENT) return fail(Errc::load_failed, "no ward fuse serves " + abs);
  if (dirfd < 0) return fail(Errc::misuse, dir.string() + ": " + std::strerror(errno));
  auto s = read_file(dirfd, dir, status_name(abs));
  ::close(dirfd);
  if (!s && s.error().kind == Errc::load_failed) return fail(Errc::load_failed, "no ward fuse serves " + abs);
  if (s && s->get("mountpoint") != abs)  // a hash collision: not this mount's
    return fail(Errc::load_failed, "no ward fuse serves " + abs);
  return s;
}

Result<std::vector<Status>> read_all_status(const fs::path& dir) {
  std::vector<Status> out;
  int dirfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dirfd < 0 && errno == ENOENT) return out;
  if (dirfd < 0) return fail(Errc::misuse, dir.string() + ": " + std::strerror(errno));
  DIR* d = ::fdopendir(::dup(dirfd));
  std::vector<std::string> names;
  while (d && (errno = 0, true)) {
    auto* e = ::readdir(d);
    if (!e) break;
    std::string n = e->d_name;
    if (n.size() > std::strlen(kSuffix) && n.ends_with(kSuffix)) names.push_back(n);
  }
  if (d) ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& n : names)
    if (auto s = read_file(dirfd, dir, n)) out.push_back(std::move(*s));
  ::close(dirfd);
  return out;
}

void remove_stale(const Status& s) {
  int dirfd = ::open(s.file.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dirfd < 0) return;
  // Looked at again: a ward that started on this mount point meanwhile has replaced it.
  auto again = read_file(dirfd, s.file.parent_path(), s.file.filename().string());
  if (again && again->stale) ::unlinkat(dirfd, s.file.filename().c_str(), 0);
  ::close(dirfd);
}

// ---- the writer -----------------------------------------------------------------------------------

Result<StatusFile> StatusFile::create(const fs::path& dir, const Options& o) {
  WARD_TRY(ensure_dir(dir));
  StatusFile f;
  f.dir_ = dir;
  f.mountpoint_ = absolute_mountpoint(o.mountpoint);
  f.journal_ = o.journal;
  f.user_ = !o.user                ? "root"
            : o.user->name.empty() ? fmt_ids(*o.user)
                                   : o.user->name + " (" + fmt_ids(*o.user) + ")";
  f.path_ = dir / status_name(f.mountpoint_);
  f.dirfd_ = WARD_TRY(open_dir(dir));
  if (auto old = read_status(dir, f.mountpoint_); old && !old->stale) {
    f.path_.clear();  // not ours to remove
    return fail(Errc::misuse, "ward fuse (pid " + old->get("ward_pid") + ") already serves " + f.mountpoint_ +
                                  " (`ward fuse status " + f.mountpoint_ + "`)");
  }
  for (const auto& w : o.command) {
    if (!f.command_.empty()) f.command_ += ' ';
    f.command_ += w.find_first_of(" \t'\"") == std::string::npos && !w.empty() ? w : "'" + w + "'";
  }
  f.started_ = f.updated_ = now_utc();
  f.start_ticks_ = process_start_ticks(::getpid());
  WARD_TRY(f.write());
  return f;
}

StatusFile::StatusFile(StatusFile&& o) noexcept
    : dir_(std::move(o.dir_)), path_(std::exchange(o.path_, {})), dirfd_(std::exchange(o.dirfd_, -1)),
      mountpoint_(std::move(o.mountpoint_)), command_(std::move(o.command_)), user_(std::move(o.user_)),
      started_(std::move(o.started_)), updated_(std::move(o.updated_)), state_(std::move(o.state_)),
      journal_(o.journal_), last_failure_(std::move(o.last_failure_)),
      last_failure_at_(std::move(o.last_failure_at_)), start_ticks_(o.start_ticks_), fs_pid_(o.fs_pid_),
      stats_(std::move(o.stats_)), events_(std::move(o.events_)), error_(std::move(o.error_)) {}

void StatusFile::on_event(const Event& e) {
  updated_ = now_utc();
  if (e.stats) stats_ = *e.stats;
  const char* name = "event";
  for (const auto& w : kEvents)
    if (w.kind == e.kind) {
      name = w.name;
      if (w.state) state_ = w.state;
    }
  if (e.kind == Event::Kind::failed || e.kind == Event::Kind::restart_failed || e.kind == Event::Kind::gave_up) {
    last_failure_ = e.detail;
    last_failure_at_ = updated_;
  }
  events_.push_back(updated_ + " " + name + ": " + e.detail);
  while (events_.size() > kKeptEvents) events_.pop_front();
  fs_pid_ = first_child();
  if (auto r = write(); !r && error_.empty()) error_ = r.error().detail;
}

Result<void> StatusFile::write() {
  if (path_.empty() || dirfd_ < 0) return {};
  auto n = [](std::uint64_t v) { return std::to_string(v); };
  // The file's keys, in order (docs/fuse.md lists them).
  const std::pair<const char*, std::string> fields[] = {
      {"mountpoint", mountpoint_},
      {"command", command_},
      {"user", user_},
      {"ward_pid", std::to_string(::getpid())},
      {"ward_start", std::to_string(start_ticks_)},
      {"fs_pid", fs_pid_ > 0 ? std::to_string(fs_pid_) : ""},
      {"state", state_},
      {"started", started_},
      {"updated", updated_},
      {"restarts", n(stats_.restarts)},
      {"last_failure", last_failure_},
      {"last_failure_at", last_failure_at_},
      {"requests", n(stats_.requests)},
      {"replies", n(stats_.replies)},
      {"reissued", n(stats_.reissued)},
      {"refused", n(stats_.refused)},
      {"answered_by_ward", n(stats_.answered_by_ward)},
      {"stale_nodes", n(stats_.stale_nodes)},
      {"joined", n(stats_.joined)},
      {"journal", !journal_ ? "off" : stats_.journal_dropped.empty() ? "on" : "dropped: " + stats_.journal_dropped},
      {"journal_entries", n(stats_.journal_entries)},
      {"journal_bytes", n(stats_.journal_bytes)},
      {"replayed", n(stats_.replayed)},
  };
  std::string text = "# ward fuse status (docs/fuse.md); counters as of `updated`\n";
  for (const auto& [k, v] : fields) text += std::string(k) + ": " + escape(v) + "\n";
  for (const auto& e : events_) text += "event: " + escape(e) + "\n";

  const std::string name = path_.filename().string();
  const std::string tmp = "." + name + "." + std::to_string(::getpid()) + ".tmp";
  ::unlinkat(dirfd_, tmp.c_str(), 0);  // a leftover of ours (same pid: a previous run killed mid-write)
  int fd = ::openat(dirfd_, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return fail(Errc::misuse, "ward fuse: status file " + (dir_ / tmp).string() + ": " + std::strerror(errno));
  std::size_t off = 0;
  while (off < text.size()) {
    ssize_t w = ::write(fd, text.data() + off, text.size() - off);
    if (w <= 0) break;
    off += static_cast<std::size_t>(w);
  }
  ::close(fd);
  if (off != text.size() || ::renameat(dirfd_, tmp.c_str(), dirfd_, name.c_str()) != 0) {
    int e = errno;
    ::unlinkat(dirfd_, tmp.c_str(), 0);
    return fail(Errc::misuse, "ward fuse: writing " + path_.string() + ": " + std::strerror(e));
  }
  return {};
}

void StatusFile::remove() {
  if (dirfd_ < 0) return;
  if (!path_.empty()) ::unlinkat(dirfd_, path_.filename().c_str(), 0);
  path_.clear();
  ::close(std::exchange(dirfd_, -1));
}

}  // namespace ward::fuse
