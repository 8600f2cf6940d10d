// ward-rio-writer: the process `ward rio torture` and the crash tests kill. It opens a Cache and
// performs random operations forever, logging each in the shared operation log on descriptor 3
// (see torture.h) before it starts and after it is acknowledged.
//
//   ward-rio-writer BACKING REGION REGION_SIZE PROTECTION SEED FILES [--stray]
//
// --stray: after some writes, store one byte into the region's read-only view from outside the
// cache's write path (a wild pointer), then carry on: protection must turn that into SIGSEGV.
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "rio/torture.h"
#include "ward/rio/cache.h"

using namespace ward::rio;

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: ward-rio-writer BACKING REGION REGION_SIZE PROTECTION SEED FILES [--stray]\n");
    return 2;
  }
  const bool stray = argc > 7 && std::strcmp(argv[7], "--stray") == 0;
  auto prot = parse_protection(argv[4]);
  if (!prot) {
    std::fprintf(stderr, "%s\n", prot.error().detail.c_str());
    return 2;
  }
  struct stat st {};
  if (fstat(3, &st) != 0) return 2;
  auto* log = static_cast<TortureLog*>(mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, 3, 0));
  if (log == MAP_FAILED) return 2;
  CacheOptions o;
  o.backing_dir = argv[1];
  o.region.path = argv[2];
  o.region.size = std::strtoull(argv[3], nullptr, 10);
  o.region.protection = *prot;
  o.writeback_age = std::chrono::milliseconds(30);  // background write-back runs during the test
  auto cache = Cache::open(o);
  if (!cache) {
    std::snprintf(log->last_error, sizeof log->last_error, "open: %s", cache.error().detail.c_str());
    return 3;
  }
  const int nfiles = std::atoi(argv[6]);
  std::vector<int> fds;
  for (int f = 0; f < nfiles; ++f) {
    auto fd = (*cache)->open_file("dir" + std::to_string(f % 2) + "/file" + std::to_string(f), kCreate);
    if (!fd) {
      std::snprintf(log->last_error, sizeof log->last_error, "open_file: %s", fd.error().detail.c_str());
      return 3;
    }
    fds.push_back(*fd);
  }
  std::mt19937_64 rng(std::strtoull(argv[5], nullptr, 10) ^ (static_cast<std::uint64_t>(getpid()) << 20));
  std::vector<std::byte> buf;
  for (std::uint64_t i = log->begun.load();; ++i) {
    if (i >= log->capacity) return 4;
    TortureOp op{};
    const unsigned r = static_cast<unsigned>(rng() % 100);
    op.file = static_cast<std::uint32_t>(rng() % static_cast<std::uint64_t>(nfiles));
    op.seed = rng();
    if (r < 72) {
      op.kind = 1;
      const unsigned sz = static_cast<unsigned>(rng() % 100);
      op.len = sz < 30 ? 1 + rng() % 64 : sz < 75 ? 1 + rng() % 8192 : 1 + rng() % 65536;
      op.off = rng() % (512 * 1024);
    } else if (r < 80) {
      op.kind = 2;
      op.off = rng() % (600 * 1024);
    } else {
      op.kind = 3;
    }
    log->ops[i] = op;
    log->begun.store(i + 1, std::memory_order_release);
    ward::Result<void> ok{};
    const int fd = fds[op.file];
    if (op.kind == 1) {
      buf.resize(op.len);
      for (std::uint64_t k = 0; k < op.len; ++k) buf[k] = static_cast<std::byte>(torture_byte(op.seed, k));
      auto w = (*cache)->write(fd, buf, op.off);
      if (!w) ok = std::unexpected(w.error());
    } else if (op.kind == 2) {
      ok = (*cache)->truncate(fd, op.off);
    } else {
      ok = (*cache)->fsync(fd);
    }
    if (!ok) {
      log->error_ops.fetch_add(1);
      std::snprintf(log->last_error, sizeof log->last_error, "op %llu: %s", static_cast<unsigned long long>(i),
                    ok.error().detail.c_str());
      return 3;  // the op is in flight for the parent: it may or may not have happened
    }
    log->acked.store(i + 1, std::memory_order_release);
    if (stray && i % 50 == 49) {
      // A wild store through the program's view of the cache, outside the write path.
      // Die of the fault itself (a sanitizer's SEGV handler would turn it into exit(1)).
      signal(SIGSEGV, SIG_DFL);
      // It lands in a block holding dirty data, so that without protection it does real harm.
      Region* reg = (*cache)->region();
      auto view = reg->mapping();
      const auto& h = reg->header();
      std::uint32_t slot = static_cast<std::uint32_t>(rng() % h.nblocks);
      for (std::uint32_t k = 0; k < h.nblocks; ++k, slot = (slot + 1) % h.nblocks)
        if (layout::word_state(reg->entry(slot).word.load()) == layout::kDirty && reg->entry(slot).len > 0) break;
      auto* p = const_cast<std::byte*>(view.data()) + h.data_off + std::uint64_t{slot} * h.block_size +
                rng() % reg->entry(slot).len;
      auto* v = reinterpret_cast<volatile unsigned char*>(p);
      *v = static_cast<unsigned char>(*v ^ 0x5a);
      log->error_ops.fetch_add(1000000);  // marks "a stray store was made and survived"
      return 5;
    }
  }
}
