#include "rio/torture.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include "rio/private_path.h"
#include "ward/rio/cache.h"

extern char** environ;

namespace ward::rio {
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<std::uint8_t>;

std::string file_name(int f) { return "dir" + std::to_string(f % 2) + "/file" + std::to_string(f); }

void apply_op(std::vector<Bytes>& model, const TortureOp& op) {
  Bytes& m = model[op.file];
  if (op.kind == 1) {
    if (m.size() < op.off + op.len) m.resize(op.off + op.len, 0);
    for (std::uint64_t k = 0; k < op.len; ++k) m[op.off + k] = torture_byte(op.seed, k);
  } else if (op.kind == 2) {
    m.resize(op.off, 0);
  }
}

Bytes read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

Result<TortureResult> torture(const TortureOptions& opt) {
  TortureResult res;
  if (opt.kills < 1 || opt.files < 1 || opt.files > 64) return fail(Errc::misuse, "torture: kills >= 1 and files 1..64");
  if (access(opt.writer.c_str(), X_OK) != 0) return fail(Errc::load_failed, "torture: cannot run the writer " + opt.writer.string());
  const fs::path backing = opt.work_dir / "backing";
  std::error_code ec;
  fs::remove_all(backing, ec);
  fs::create_directories(backing, ec);
  if (ec) return fail(Errc::misuse, "torture: cannot create " + backing.string() + ": " + ec.message());
  // The default region lives in a fresh private directory on tmpfs (see rio/private_path.h).
  fs::path shm;
  if (opt.region.empty()) shm = WARD_TRY(make_private_dir("/dev/shm", "ward-torture"));
  const fs::path region = !opt.region.empty() ? opt.region : shm / "region.rio";
  fs::remove(region, ec);
  struct Cleanup {
    fs::path shm;
    ~Cleanup() {
      std::error_code e;
      if (!shm.empty()) fs::remove_all(shm, e);
    }
  } cleanup{shm};

  // The operation log, shared with every writer.
  const std::uint64_t capacity = 1u << 20;
  const std::size_t log_size = sizeof(TortureLog) + capacity * sizeof(TortureOp);
  const int logfd = memfd_create("ward-torture-log", MFD_CLOEXEC);
  if (logfd < 0 || ftruncate(logfd, static_cast<off_t>(log_size)) != 0) return fail(Errc::load_failed, "torture: memfd");
  auto* log = static_cast<TortureLog*>(mmap(nullptr, log_size, PROT_READ | PROT_WRITE, MAP_SHARED, logfd, 0));
  if (log == MAP_FAILED) return fail(Errc::load_failed, "torture: mmap log");
  struct LogGuard {
    void* p;
    std::size_t n;
    int fd;
    ~LogGuard() {
      munmap(p, n);
      ::close(fd);
    }
  } log_guard{log, log_size, logfd};
  log->capacity = capacity;

  std::vector<Bytes> model(static_cast<std::size_t>(opt.files));
  std::mt19937 rng(opt.seed);
  std::uint64_t applied = 0;
  const std::string size_arg = std::to_string(opt.region_size);
  const std::string prot_arg(to_string(opt.protection));
  const std::string files_arg = std::to_string(opt.files);
  std::uint32_t block_size = 4096;

  for (int kill_no = 1; kill_no <= opt.kills; ++kill_no) {
    const std::string seed_arg = std::to_string(opt.seed * 1000003ull + static_cast<unsigned>(kill_no));
    char stray_arg[] = "--stray";
    char* argv[] = {const_cast<char*>(opt.writer.c_str()), const_cast<char*>(backing.c_str()), const_cast<char*>(region.c_str()),
                    const_cast<char*>(size_arg.c_str()), const_cast<char*>(prot_arg.c_str()), const_cast<char*>(seed_arg.c_str()),
                    const_cast<char*>(files_arg.c_str()), opt.stray ? stray_arg : nullptr, nullptr};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, logfd, 3);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, opt.writer.c_str(), &fa, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return fail(Errc::load_failed, "torture: spawn writer: " + std::string(std::strerror(rc)));
    if (opt.stray) {
      // It ends by itself: SIGSEGV when protection catches the stray store.
      int st = 0;
      for (int i = 0; i < 20000; ++i) {
        if (waitpid(pid, &st, WNOHANG) == pid) {
          pid = -1;
          break;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(500));
      }
      if (pid > 0) {
        ::kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        res.problems.push_back("stray-store writer did not end within 10 s");
      }
      res.last_writer_status = st;
      pid = -1;
    }
    // Let it get going (its start-up includes recovery of the previous kill), then kill it.
    const std::uint64_t start_acked = log->acked.load();
    for (int i = 0; pid > 0 && i < 2000 && log->acked.load() == start_acked; ++i) {
      int st;
      if (waitpid(pid, &st, WNOHANG) == pid) {
        pid = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (pid > 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % (opt.max_delay_us + 1)));
      ::kill(pid, SIGKILL);
      int st;
      waitpid(pid, &st, 0);
      res.last_writer_status = st;
      if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
        res.problems.push_back("writer ended by itself before the kill: " + std::string(log->last_error));
    } else if (!opt.stray) {
      res.problems.push_back("writer ended by itself: " + std::string(log->last_error));
    }
    ++res.kills;

    // Acknowledged operations go into the model; the one in flight is judged after recovery.
    const std::uint64_t acked = log->acked.load(), begun = log->begun.load();
    for (; applied < acked; ++applied) apply_op(model, log->ops[applied]);
    res.ops_acked += acked;
    const bool in_flight = begun > acked;
    TortureOp flight{};
    if (in_flight) flight = log->ops[acked];

    // Warm reboot: opening the cache recovers the crashed owner's region.
    {
      RecoveryReport rep;
      CacheOptions o;
      o.backing_dir = backing;
      o.region.path = region;
      o.region.size = opt.region_size;
      o.region.protection = opt.protection;
      o.writeback_age = std::chrono::milliseconds(0);
      const auto cache = WARD_TRY(Cache::open(o, &rep));
      block_size = cache->region()->block_size();
      res.written_back += rep.written_back;
      for (const auto& c : rep.corrupt)
        res.problems.push_back("kill " + std::to_string(kill_no) + ": corrupt block " + c.file + "#" + std::to_string(c.block) +
                               ": " + c.reason);
      for (const auto& u : rep.unwritable) res.problems.push_back("kill " + std::to_string(kill_no) + ": " + u);
      // ~Cache: clean close
    }

    // Verify every file against the model, straight from the backing directory.
    for (int f = 0; f < opt.files; ++f) {
      const Bytes actual = read_file(backing / file_name(f));
      Bytes& old_m = model[static_cast<std::size_t>(f)];
      const bool touched = in_flight && flight.file == static_cast<std::uint32_t>(f) && flight.kind != 3;
      if (!touched) {
        res.bytes_verified += actual.size();
        if (actual != old_m) {
          std::uint64_t bad = 0;
          for (std::size_t i = 0; i < std::max(actual.size(), old_m.size()); ++i)
            if (i >= actual.size() || i >= old_m.size() || actual[i] != old_m[i]) ++bad;
          res.lost += bad;
          if (res.problems.size() < 10)
            res.problems.push_back("kill " + std::to_string(kill_no) + ": " + file_name(f) + ": " + std::to_string(bad) +
                                   " acknowledged bytes differ (size " + std::to_string(actual.size()) + ", expected " +
                                   std::to_string(old_m.size()) + ")");
        }
        continue;
      }
      Bytes new_m = old_m;
      apply_op(model, flight);  // model[f] is now the "new" version
      std::swap(new_m, model[static_cast<std::size_t>(f)]);  // new_m = new, model[f] = old again
      if (actual == new_m) {
        ++res.in_flight_applied;
      } else if (actual == old_m) {
        ++res.in_flight_dropped;
      } else if (flight.kind == 1 && actual.size() == old_m.size()) {
        // Partly applied, block by block: each block must be wholly old or wholly new.
        const std::uint64_t bs = block_size;
        for (std::uint64_t b = 0; b * bs < actual.size(); ++b) {
          const std::size_t lo = static_cast<std::size_t>(b * bs), hi = std::min<std::size_t>(actual.size(), (b + 1) * bs);
          const bool is_old = std::equal(actual.begin() + lo, actual.begin() + hi, old_m.begin() + lo);
          const bool is_new = hi <= new_m.size() && std::equal(actual.begin() + lo, actual.begin() + hi, new_m.begin() + lo);
          if (!is_old && !is_new) {
            ++res.torn_blocks;
            if (res.problems.size() < 10)
              res.problems.push_back("kill " + std::to_string(kill_no) + ": " + file_name(f) + ": torn block " + std::to_string(b));
          }
        }
        ++res.in_flight_applied;
      } else {
        ++res.torn_blocks;
        if (res.problems.size() < 10)
          res.problems.push_back("kill " + std::to_string(kill_no) + ": " + file_name(f) + ": in-flight operation left size " +
                                 std::to_string(actual.size()) + " (old " + std::to_string(old_m.size()) + ", new " +
                                 std::to_string(new_m.size()) + ")");
      }
      res.bytes_verified += actual.size();
      model[static_cast<std::size_t>(f)] = actual;  // carry on from what is really there
    }
    // Everything logged is settled (the in-flight operation too): the next writer starts the log
    // from the beginning.
    log->acked.store(0);
    log->begun.store(0);
    applied = 0;
    if (opt.progress) {
      opt.progress(kill_no, "kill " + std::to_string(kill_no) + "/" + std::to_string(opt.kills) + ": " +
                                std::to_string(res.ops_acked) + " ops acknowledged, " + std::to_string(res.written_back) + " blocks written back by recovery, " +
                                std::to_string(res.lost) + " bytes lost, " + std::to_string(res.torn_blocks) + " torn");
    }
  }
  return res;
}

}  // namespace ward::rio
