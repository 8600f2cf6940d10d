// The cgroups that bound a file-system instance (process_limit.h has the contract).
#include "fuse/process_limit.h"

#include "core/read_file.h"
#include "fuse/mountinfo.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

namespace ward::fuse::detail {
namespace {

bool has_word(const std::string& list, char sep, const std::string& word) {
  std::istringstream s(list);
  for (std::string w; std::getline(s, w, sep);)
    if (w == word) return true;
  return false;
}

std::string slurp(const std::string& path) { return read_file(path); }

// One kind of bound: its controller, and the file that holds the bound in each cgroup version.
struct Controller {
  const char* name;
  const char* v1_file;
  const char* v2_file;
  std::uint64_t Bounds::*value;  // 0: not asked for
};
constexpr Controller kControllers[] = {
    {"pids", "pids.max", "pids.max", &Bounds::tasks},
    {"memory", "memory.limit_in_bytes", "memory.max", &Bounds::memory},
};

// The directory of ward's own cgroup in a hierarchy with controller `c`, and whether it is v1.
struct Place {
  std::string dir;
  bool v1 = false;
};
Result<Place> own_cgroup(const Controller& c) {
  std::ifstream in("/proc/self/cgroup");
  std::string v1_path, v2_path;
  bool v1 = false, v2 = false;
  for (std::string line; std::getline(in, line);) {
    auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (has_word(controllers, ',', c.name)) v1 = true, v1_path = path;
    if (line.starts_with("0::")) v2 = true, v2_path = path;
  }
  // A mount of the hierarchy whose root is at or above ward's cgroup.
  auto below = [](const MountInfo& m, const std::string& path) -> std::optional<std::string> {
    if (m.root == "/") return m.mountpoint + (path == "/" ? "" : path);
    if (path == m.root || path.starts_with(m.root + "/")) return m.mountpoint + path.substr(m.root.size());
    return std::nullopt;
  };
  for (const MountInfo& m : read_mountinfo()) {
    if (v1 && m.fstype == "cgroup" && has_word(m.superopts, ',', c.name))
      if (auto d = below(m, v1_path)) return Place{*d, true};
    if (v2 && !v1 && m.fstype == "cgroup2")
      if (auto d = below(m, v2_path)) {
        // Children get the controller only if ward's cgroup hands it down (then it holds no
        // process itself, unless it is the root: cgroup v2's "no internal processes").
        std::string delegated = slurp(*d + "/cgroup.subtree_control");
        std::replace(delegated.begin(), delegated.end(), '\n', ' ');
        if (has_word(delegated, ' ', c.name)) return Place{*d, false};
        return fail(Errc::load_failed, "cgroup v2 at " + *d + " does not delegate the " + c.name + " controller");
      }
  }
  return fail(Errc::load_failed, std::string("no cgroup hierarchy with the ") + c.name + " controller is mounted");
}

// Cgroups ward makes: ward-fuse-<ward's pid>-<instance>.
constexpr std::string_view kPrefix = "ward-fuse-";

bool write_file(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  int e = errno;
  ::close(fd);
  errno = e;
  return ok;
}

}  // namespace

ProcessLimit::ProcessLimit(ProcessLimit&& o) noexcept
    : dirs_(std::exchange(o.dirs_, {})), procs_(std::exchange(o.procs_, {})), missing_(std::exchange(o.missing_, {})) {}

ProcessLimit& ProcessLimit::operator=(ProcessLimit&& o) noexcept {
  if (this != &o) {
    remove();
    dirs_ = std::exchange(o.dirs_, {});
    procs_ = std::exchange(o.procs_, {});
    missing_ = std::exchange(o.missing_, {});
  }
  return *this;
}

ProcessLimit::~ProcessLimit() { remove(); }

void ProcessLimit::sweep_stale() {
  for (const Controller& c : kControllers) {
    auto parent = own_cgroup(c);
    if (!parent) continue;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(parent->dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename();
      if (!name.starts_with(kPrefix)) continue;
      long pid = std::strtol(name.c_str() + kPrefix.size(), nullptr, 10);
      // Another ward's, between its mkdir and its instance joining, is empty too: only the dead's.
      if (pid > 0 && pid != ::getpid() && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
        ::rmdir(it->path().c_str());
    }
  }
}

std::string ProcessLimit::tag(unsigned instance) {
  return std::string(kPrefix) + std::to_string(::getpid()) + "-" + std::to_string(instance);
}

ProcessLimit ProcessLimit::make(const Bounds& b, const std::string& tag) {
  sweep_stale();
  ProcessLimit l;
  for (const Controller& c : kControllers) {
    const std::uint64_t value = b.*c.value;
    if (value == 0) continue;
    auto made = [&]() -> Result<void> {
      Place at = WARD_TRY(own_cgroup(c));
      std::string dir = at.dir + "/" + tag;
      // cgroup v2 puts every controller in one cgroup: made once, joined once.
      if (std::find(l.dirs_.begin(), l.dirs_.end(), dir) == l.dirs_.end()) {
        if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
          return fail(Errc::load_failed, errno_text("cannot make the cgroup " + dir, errno));
        l.dirs_.push_back(dir);  // removed by the destructor from here on
        l.procs_.push_back(dir + "/cgroup.procs");
      }
      const std::string file = dir + "/" + (at.v1 ? c.v1_file : c.v2_file);
      if (!write_file(file, std::to_string(value))) return fail(Errc::load_failed, errno_text("cannot write " + file, errno));
      return {};
    }();
    if (!made) l.missing_.push_back(made.error());
  }
  return l;
}

void ProcessLimit::remove() {
  // The instance's tasks leave the cgroups as the kernel finishes them, shortly after the reap.
  for (const std::string& dir : dirs_)
    for (int i = 0; i < 200 && ::rmdir(dir.c_str()) != 0 && errno == EBUSY; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  dirs_.clear();
  procs_.clear();
}

}  // namespace ward::fuse::detail
