// `ward rio inspect | recover | torture`: look into a Rio region, run its warm reboot, and run
// the crash test from the command line.
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

#include "commands.h"
#include "progress.h"
#include "rio/private_path.h"
#include "rio/torture.h"
#include "ward/rio/cache.h"

namespace ward::cli {
namespace {

namespace fs = std::filesystem;

int inspect_cmd(const std::string& path, bool verbose) {
  auto in = rio::inspect(path);
  if (!in) {
    fmt::print(stderr, "ward rio inspect: {}\n", in.error().detail);
    return 2;
  }
  fmt::print("region      {}\n", path);
  fmt::print("layout      version {}, {} blocks of {} bytes, {} file slots, {} bytes\n", in->version, in->nblocks,
             in->block_size, in->nfiles, in->region_size);
  fmt::print("generation  {}\n", in->generation);
  fmt::print("state       {}{}\n", in->clean ? "clean (closed cleanly)" : "NOT clean (open, or its owner crashed: recover it)",
             in->in_use ? fmt::format(", in use by pid {}", in->owner_pid) : "");
  fmt::print("backing     {}\n", in->backing_dir.empty() ? "(unknown)" : in->backing_dir);
  fmt::print("blocks      {} dirty, {} clean, {} free, {} quarantined\n", in->dirty, in->clean_blocks, in->free, in->quarantined);
  if (in->torn_unsynced)
    fmt::print("torn        {} version(s) newer than the last flush torn by a power cut (never acknowledged; recovery "
               "drops them)\n", in->torn_unsynced);
  if (!in->files.empty()) {
    fmt::print("files\n");
    for (const auto& f : in->files)
      if (verbose || f.dirty || f.clean) fmt::print("  {:<40} size {:>10}  dirty blocks {:>6}  clean {:>6}\n", f.path, f.size, f.dirty, f.clean);
  }
  if (!in->corrupt.empty()) {
    fmt::print("CORRUPT entries: {}\n", in->corrupt.size());
    for (const auto& c : in->corrupt) fmt::print("  slot {}: {} block {}: {}\n", c.slot, c.file, c.block, c.reason);
  }
  return in->corrupt.empty() ? 0 : 1;
}

int recover_cmd(const std::string& path, std::string backing) {
  if (!fs::exists(path)) {
    fmt::print(stderr, "ward rio recover: {}: no such region\n", path);
    return 2;
  }
  rio::RegionOptions o;
  o.path = path;
  o.create = false;
  auto r = rio::Region::open(o);
  if (!r) {
    fmt::print(stderr, "ward rio recover: {}\n", r.error().detail);
    return 2;
  }
  if (backing.empty()) backing = (*r)->backing_dir();
  if (backing.empty() || !fs::is_directory(backing)) {
    fmt::print(stderr, "ward rio recover: backing directory {} not found (give --backing DIR)\n",
               backing.empty() ? "(not recorded)" : backing);
    return 2;
  }
  auto rep = rio::recover(**r, backing);
  if (!rep) {
    fmt::print(stderr, "ward rio recover: {}\n", rep.error().detail);
    return 2;
  }
  // Clean only when nothing is left dirty.
  bool dirty_left = false;
  for (std::uint32_t s = 0; s < (*r)->nblocks(); ++s)
    dirty_left |= rio::layout::word_state((*r)->entry(s).word.load()) == rio::layout::kDirty;
  if (!dirty_left) (*r)->set_clean(true);
  fmt::print("{}\n", rep->summary());
  for (const auto& c : rep->corrupt) fmt::print("  LOST: {} block {} (slot {}): {}\n", c.file, c.block, c.slot, c.reason);
  for (const auto& u : rep->unwritable) fmt::print("  kept in the region (not written back): {}\n", u);
  if (rep->lost()) return 1;           // acknowledged data could not be kept
  if (!rep->unwritable.empty()) return 3;  // nothing lost, but some data is still only in the region
  return 0;
}

int torture_cmd(rio::TortureOptions o, bool quiet) {
  std::error_code ec;
  const bool made = o.work_dir.empty();
  if (made) {
    // A new private directory (0700, created exclusively), never a predictable name in /tmp.
    auto d = rio::make_private_dir(fs::temp_directory_path(), "ward-torture");
    if (!d) {
      fmt::print(stderr, "ward rio torture: {}\n", d.error().detail);
      return 2;
    }
    o.work_dir = *d;
  }
  fs::create_directories(o.work_dir, ec);
  if (o.writer.empty()) {
    const auto self = fs::read_symlink("/proc/self/exe", ec);
    o.writer = self.parent_path() / "ward-rio-writer";
  }
  fmt::print("ward rio torture: {} kills, protection {}, work dir {}\n", o.kills, rio::to_string(o.protection), o.work_dir.string());
  // Progress on stderr (a bar on a terminal, a line every 5 s elsewhere): stdout keeps the report.
  Progress bar({.label = "ward rio torture", .total = static_cast<std::uint64_t>(o.kills), .unit = "kills",
                .mode = Progress::mode_for(quiet)});
  std::string last;
  o.progress = [&](int k, const std::string& line) {
    last = line.substr(line.find(": ") + 2);  // the counts after "kill k/n: "
    bar.update(static_cast<std::uint64_t>(k), last);
  };
  auto r = rio::torture(o);
  bar.finish(r ? last : "failed");
  if (!r) {
    fmt::print(stderr, "ward rio torture: {}\n", r.error().detail);
    return 2;
  }
  fmt::print("\nkills                     {}\n", r->kills);
  fmt::print("writes verified           {} acknowledged operations, {} file bytes compared\n", r->ops_acked, r->bytes_verified);
  fmt::print("written back by recovery  {} blocks\n", r->written_back);
  fmt::print("in flight at the kill     {} applied, {} not applied (either is correct)\n", r->in_flight_applied, r->in_flight_dropped);
  fmt::print("torn blocks               {}\n", r->torn_blocks);
  fmt::print("writes lost               {} bytes\n", r->lost);
  for (const auto& p : r->problems) fmt::print("  problem: {}\n", p);
  fs::remove_all(made ? o.work_dir : o.work_dir / "backing", ec);
  fmt::print("\n{}\n", r->ok() ? "OK: nothing acknowledged was lost, no block was torn" : "FAILED");
  return r->ok() ? 0 : 1;
}

}  // namespace

void add_rio(CLI::App& app, int& exit_code) {
  auto* rio = app.add_subcommand("rio", "The Rio file cache: inspect a region, recover it, torture it");
  rio->require_subcommand(1);

  auto path = std::make_shared<std::string>();
  auto verbose = std::make_shared<bool>(false);
  auto* in = rio->add_subcommand("inspect", "Blocks, dirty blocks per file, generation, clean flag, corrupt entries");
  in->add_option("REGION", *path, "Region file")->required();
  in->add_flag("-v,--verbose", *verbose, "List files without cached blocks too");
  in->callback([path, verbose, &exit_code] { exit_code = inspect_cmd(*path, *verbose); });

  auto rpath = std::make_shared<std::string>();
  auto backing = std::make_shared<std::string>();
  auto* rec = rio->add_subcommand("recover",
                                  "Warm reboot: verify every entry, write dirty blocks back, mark clean. Exit 0: all "
                                  "written back; 1: something was lost (corrupt); 3: some data could not be written back "
                                  "and stays in the region; 2: could not run");
  rec->add_option("REGION", *rpath, "Region file")->required();
  rec->add_option("--backing", *backing, "Backing directory (default: the one recorded in the region)");
  rec->callback([rpath, backing, &exit_code] { exit_code = recover_cmd(*rpath, *backing); });

  auto opt = std::make_shared<rio::TortureOptions>();
  auto prot = std::make_shared<std::string>(std::string(rio::to_string(rio::kDefaultProtection)));
  auto dir = std::make_shared<std::string>();
  auto quiet = std::make_shared<bool>(false);
  auto* tor = rio->add_subcommand("torture",
                                  "Crash test: random writes killed with SIGKILL, recovery, byte-for-byte verification. "
                                  "Exit 1 if anything acknowledged was lost");
  tor->add_option("--kills", opt->kills, "How many times to kill the writer")->capture_default_str()->check(CLI::Range(1, 1000000));
  tor->add_option("--files", opt->files, "Files written")->capture_default_str()->check(CLI::Range(1, 64));
  tor->add_option("--seed", opt->seed, "Random seed")->capture_default_str();
  tor->add_option("--region-size", opt->region_size, "Region size in bytes (small: capacity write-back happens)")->capture_default_str();
  tor->add_option("--protection", *prot, "off, mprotect, alias or pkeys")->capture_default_str();
  tor->add_option("--dir", *dir, "Work directory for the backing files (default: a new one under /tmp)");
  tor->add_option("--max-delay-us", opt->max_delay_us, "Longest random delay before each kill")->capture_default_str();
  tor->add_flag("-q,--quiet", *quiet, "No progress (otherwise on stderr: a bar on a terminal, a line every 5 s elsewhere)");
  tor->callback([opt, prot, dir, quiet, &exit_code] {
    auto p = rio::parse_protection(*prot);
    if (!p) {
      fmt::print(stderr, "ward rio torture: {}\n", p.error().detail);
      exit_code = 2;
      return;
    }
    opt->protection = *p;
    opt->work_dir = *dir;
    exit_code = torture_cmd(*opt, *quiet);
  });
}

}  // namespace ward::cli
