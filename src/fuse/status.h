// The per-mount status of `ward fuse`: a small text file that the running ward keeps up to date
// from the relay's events (include/ward/fuse/relay.h, Options::on_event) and that
// `ward fuse status` reads. docs/fuse.md, "Status and background mode".
//
// Contract.
//   * Where: one private directory, $WARD_FUSE_STATUS_DIR or /run/ward/fuse, created mode 0700
//     and checked with src/rio/private_path.h (owned by the caller, no group/other access, not a
//     link; its parent trusted). One file per mount, named by a hash of the mount point's absolute
//     path (names stay short whatever the path; the path itself is inside).
//   * What: `key: value` lines (values escaped: `\\`, `\n`), the keys in kFields of status.cc, and
//     up to kKeptEvents `event:` lines, oldest first. Counters are those of the last event (the
//     relay reports them only then); `updated` says when that was.
//   * How: every write is a new file (O_EXCL, 0600) renamed over the old one, so a reader sees the
//     previous or the next version, never half of one. The writer removes its file when it ends;
//     a ward that was killed leaves one behind, which readers recognise (the pid it names is gone,
//     or belongs to another process: its start time differs) and report as stale.
//   * Threads: StatusFile has one owner (the relay thread calls on_event synchronously); the
//     readers are free functions without shared state.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "ward/core/error.h"
#include "ward/fuse/relay.h"

namespace ward::fuse {

inline constexpr std::size_t kKeptEvents = 10;

// $WARD_FUSE_STATUS_DIR if set and not empty, else /run/ward/fuse.
[[nodiscard]] std::filesystem::path status_dir();

// `mnt` made absolute without asking the mount itself (a hung file system must not hang
// `ward fuse status`): the parent directory resolved with realpath, the last name kept as is.
[[nodiscard]] std::string absolute_mountpoint(const std::string& mnt);

// The status file's name for an absolute mount point.
[[nodiscard]] std::string status_name(const std::string& abs_mountpoint);

// One status file as read back.
struct Status {
  std::filesystem::path file;
  std::vector<std::pair<std::string, std::string>> fields;  // in file order, `event` excluded
  std::vector<std::string> events;                          // oldest first
  bool stale = false;  // the ward that wrote it is gone
  std::string get(const std::string& key) const;
};

// The status of the ward fuse serving `mnt`; not_found (Errc::misuse with a detail saying so)
// when there is none. A stale file is returned with `stale` set (the caller decides).
[[nodiscard]] Result<Status> read_status(const std::filesystem::path& dir, const std::string& mnt);
// Every status file in `dir` (none if the directory does not exist yet).
[[nodiscard]] Result<std::vector<Status>> read_all_status(const std::filesystem::path& dir);
// Removes a stale status file (only if it is still stale when looked at again).
void remove_stale(const Status& s);

// The writer, owned by the running `ward fuse`.
class StatusFile {
 public:
  // Makes the directory if needed and writes the first version (state `starting`). Refuses, in
  // words, when a live ward already serves the same mount point; replaces a stale file.
  // From `o`: the mount point, the command, the user it runs as, whether it keeps a journal.
  [[nodiscard]] static Result<StatusFile> create(const std::filesystem::path& dir, const Options& o);
  StatusFile(StatusFile&& o) noexcept;
  StatusFile& operator=(StatusFile&&) = delete;
  StatusFile(const StatusFile&) = delete;
  ~StatusFile() { remove(); }

  // Records the event and rewrites the file. A failed write is kept for error() and does not
  // stop the mount: the status is a report, not part of serving.
  void on_event(const Event& e);
  const std::string& error() const { return error_; }
  // Removes the file (idempotent).
  void remove();
  const std::filesystem::path& path() const { return path_; }

 private:
  StatusFile() = default;
  Result<void> write();

  std::filesystem::path dir_, path_;
  int dirfd_ = -1;
  std::string mountpoint_, command_, user_, started_, updated_, state_ = "starting";
  bool journal_ = false;
  std::string last_failure_, last_failure_at_;
  unsigned long long start_ticks_ = 0;
  pid_t fs_pid_ = -1;
  Stats stats_;
  std::deque<std::string> events_;
  std::string error_;
};

// The start time of `pid` in clock ticks since boot (/proc/PID/stat, field 22); 0 if it is gone.
[[nodiscard]] unsigned long long process_start_ticks(pid_t pid);

}  // namespace ward::fuse
