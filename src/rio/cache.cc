#include "ward/rio/cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "rio/cache_impl.h"
#include "rio/private_path.h"
#include "rio/writeback.h"

namespace ward::rio {
namespace L = layout;
namespace fs = std::filesystem;

std::string_view to_string(Mode m) noexcept {
  switch (m) {
    case Mode::rio: return "rio";
    case Mode::write_through: return "write-through";
    case Mode::unsafe_write_back: return "unsafe-write-back";
  }
  return "unknown";
}

fs::path default_region_path(const fs::path& backing_dir, const fs::path& shared) {
  std::error_code ec;
  const std::string abs = fs::weakly_canonical(backing_dir, ec).string();
  char name[64];
  std::snprintf(name, sizeof name, "rio-%016llx", static_cast<unsigned long long>(XXH3_64bits(abs.data(), abs.size())));
  return shared / ("ward-" + std::to_string(geteuid())) / name;
}

Cache::Cache(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Cache>> Cache::open(CacheOptions opt, RecoveryReport* report) {
  std::error_code ec;
  if (opt.backing_dir.empty() || !fs::is_directory(opt.backing_dir, ec))
    return fail(Errc::misuse, "rio: backing directory '" + opt.backing_dir.string() + "' does not exist");
  auto impl = std::make_unique<Impl>();
  if (opt.mode == Mode::rio) {
    if (opt.region.path.empty()) {
      opt.region.path = default_region_path(opt.backing_dir);
      WARD_TRY(ensure_private_dir(opt.region.path.parent_path()));
    }
    impl->region = WARD_TRY(Region::open(opt.region));
    std::error_code aec;
    impl->region->set_backing_dir(fs::absolute(opt.backing_dir, aec).lexically_normal().string());
    // Warm reboot: always verify (idempotent; cheap when the region was closed cleanly).
    auto rep = WARD_TRY(recover(*impl->region, opt.backing_dir));
    if (report) *report = rep;
    impl->load_index();
  }
  impl->opt = std::move(opt);
  auto* raw = impl.get();
  std::unique_ptr<Cache> c(new Cache(std::move(impl)));
  if (raw->region) raw->bg = std::thread([raw] { raw->background(); });  // capacity write-back, and age if set
  return c;
}

Cache::~Cache() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> g(impl_->sig_mu);
    impl_->stopping = true;
  }
  impl_->bg_cv.notify_all();
  if (impl_->bg.joinable()) impl_->bg.join();
  if (impl_->region) {
    Impl::IoLock io(*impl_);
    bool settled_ends = false;
    {
      std::lock_guard g(impl_->mu);
      settled_ends = impl_->settle_ends().has_value();
    }
    const bool all_back = impl_->write_back_round(Impl::Pick::all, 0).has_value() && settled_ends;
    std::lock_guard g(impl_->mu);
    // Clean only if nothing is left dirty — a block reaching past the end of its file stays
    // dirty through write-back — and every retired slot is durably free: otherwise the next
    // open recovers the rest.
    bool settled = all_back;
    for (int i = impl_->region->flushes_pending(); i > 0 && settled; --i) settled = impl_->durability_point().has_value();
    if (settled && !impl_->any_dirty()) impl_->region->set_clean(true);
    (void)impl_->region->flush();
  }
}

void Cache::abandon() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> g(impl_->sig_mu);
    impl_->stopping = true;
  }
  impl_->bg_cv.notify_all();
  if (impl_->bg.joinable()) impl_->bg.join();
  impl_.reset();  // unmaps and unlocks without writing anything back
}

Mode Cache::mode() const { return impl_->opt.mode; }
Region* Cache::region() { return impl_->region.get(); }

Result<int> Cache::open_file(std::string_view path, int flags) {
  WARD_TRY(detail::check_relative_path(path));
  Impl& m = *impl_;
  std::unique_lock g(m.mu);
  auto find = [&] {
    for (std::uint32_t i = 0; i < m.files.size(); ++i)
      if (m.files[i].used && m.files[i].path == path) return i;
    return ~0u;
  };
  std::uint32_t fi = find();
  if (fi == ~0u) {
    // Creating, opening and syncing the backing file is disk I/O: done without the lock, the
    // result published under it. An opener that raced this one and published first wins; this
    // one's descriptor is closed.
    g.unlock();
    const fs::path full = m.opt.backing_dir / std::string(path);
    std::error_code ec;
    const bool exists = fs::exists(full, ec);
    if (!exists && !(flags & kCreate)) return fail(Errc::misuse, "rio: " + std::string(path) + ": no such file");
    // Create the backing file now, so a missing one later means it was removed.
    auto fd = std::make_shared<Impl::BackingFd>(WARD_TRY(detail::open_backing(m.opt.backing_dir, std::string(path), true)));
    struct stat sb {};
    fstat(fd->fd, &sb);
    // A new file's directory entry must survive a power cut before the region names it.
    if (!exists && m.region && m.region->durability() == Durability::synced) WARD_TRY(detail::sync_dir(full.parent_path()));
    g.lock();
    fi = find();
    if (fi == ~0u) {
      if (m.region) {
        for (std::uint32_t i = 0; i < m.files.size() && fi == ~0u; ++i)
          if (!m.files[i].used) fi = i;
        if (fi == ~0u)
          return fail(Errc::limit, "rio: the region's file table is full (" + std::to_string(m.files.size()) + " files)");
        Impl::File& f = m.files[fi];
        f = {true, f.gen + 1, std::string(path), static_cast<std::uint64_t>(sb.st_size), std::move(fd), f.epoch + 1};
        m.region->set_file(fi, f.gen, f.path, f.size);
      } else {
        fi = static_cast<std::uint32_t>(m.files.size());
        m.files.push_back({true, 1, std::string(path), static_cast<std::uint64_t>(sb.st_size), std::move(fd), 0});
      }
    }
  }
  const int cfd = m.next_fd++;
  m.fds[cfd] = fi;
  if (flags & kTruncate) {
    g.unlock();
    WARD_TRY(truncate(cfd, 0));
  }
  return cfd;
}

namespace {

// A block-sized scratch buffer per thread: a write builds each new version in it before storing
// it into the region. Not allocated per write: a 4 KiB malloc/free pair (glibc's arena path,
// with its occasional consolidation) inside the lock showed up in the write path's profile.
std::span<std::byte> scratch(std::size_t bs) {
  thread_local std::vector<std::byte> buf;
  if (buf.size() < bs) buf.resize(bs);
  return {buf.data(), bs};
}

}  // namespace

Result<std::size_t> Cache::write(int fd, std::span<const std::byte> data, std::uint64_t off) {
  Impl& m = *impl_;
  // A write of exactly one whole block (the common case) is copied before taking the lock: the
  // version's bytes are then the writer's private copy (a caller changing its buffer meanwhile
  // cannot make the checksum disagree with the stored bytes), and the lock covers one copy, not two.
  const std::uint64_t bs = m.region ? m.bs() : 0;
  const std::span<std::byte> buf = m.region ? scratch(bs) : std::span<std::byte>{};
  const bool whole = m.region && data.size() == bs && off % bs == 0;
  if (whole) std::memcpy(buf.data(), data.data(), bs);
  m.yield_to_writeback();
  std::lock_guard g(m.mu);
  const std::uint32_t fi = WARD_TRY(m.file_of(fd));
  Impl::File& f = m.files[fi];
  if (off > (1ull << 51) || data.size() > (1ull << 40)) return fail(Errc::misuse, "rio: offset or size out of range");
  ++m.st.writes;
  if (!m.region) {
    const int bfd = WARD_TRY(m.backing_fd(fi));
    std::size_t done = 0;
    while (done < data.size()) {
      const ssize_t w = pwrite(bfd, data.data() + done, data.size() - done, static_cast<off_t>(off + done));
      if (w < 0) {
        if (errno == EINTR) continue;
        return fail(Errc::limit, "rio: " + f.path + ": " + std::strerror(errno));
      }
      done += static_cast<std::size_t>(w);
    }
    if (m.opt.mode == Mode::write_through && fdatasync(bfd) != 0)
      return fail(Errc::limit, "rio: " + f.path + ": fdatasync: " + std::strerror(errno));
    f.size = std::max(f.size, off + data.size());
    return data.size();
  }
  if (off + data.size() > f.size && off / bs != f.size / bs)
    WARD_TRY(m.trim_end_block(fi));
  std::size_t done = 0;
  int tries = 0;  // read-throughs of this block that something overtook (see below)
  while (done < data.size()) {
    const std::uint64_t pos = off + done;
    const std::uint64_t blk = pos / bs, boff = pos % bs;
    const std::uint64_t k = Impl::key(fi, blk);
    const std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(bs - boff, data.size() - done));
    WARD_TRY(m.wait_loading(k));         // another write reads this block through: it goes first
    WARD_TRY(m.prepare_block(fi, blk));  // may wait for write-back, with the lock released
    if (m.loading.contains(k)) continue;  // one started while this write waited for a slot
    auto it = m.index.find(k);
    const std::uint32_t old = it == m.index.end() ? ~0u : it->second;
    // The block's current bytes, unless this write covers all of it.
    std::uint64_t len = 0;
    if (chunk < bs) {
      const std::uint64_t in_file = f.size > blk * bs ? std::min<std::uint64_t>(bs, f.size - blk * bs) : 0;
      if (old != ~0u) {
        len = std::min<std::uint64_t>(m.region->entry(old).len, in_file);
        std::memcpy(buf.data(), m.region->block(old), len);
      } else if (in_file > 0) {
        // Read through without the lock; other writes of this block wait (loading). If a
        // truncation, an unlink or an eviction overtook the pread, or the slot this write was
        // promised went meanwhile, look again; after kLockedAfter tries, read under the lock.
        m.loading.insert(k);
        auto fresh = m.read_through(fi, buf.data(), blk * bs, in_file, tries < Impl::kLockedAfter);
        m.loading.erase(k);
        m.load_cv.notify_all();
        if (!WARD_TRY(std::move(fresh)) || !m.has_slot() || m.index.contains(k)) {
          ++tries;
          continue;
        }
        len = in_file;  // bytes past the backing file's end are a hole: zeros
      }
      if (len < boff) std::memset(buf.data() + len, 0, boff - len);
    }
    if (!whole) std::memcpy(buf.data() + boff, data.data() + done, chunk);
    len = std::max<std::uint64_t>(len, boff + chunk);
    const std::uint32_t slot = WARD_TRY(m.alloc_slot());
    // Shadowed update: the new version goes to a free slot and is published with one store;
    // only then is the old version freed (looked up again: eviction may have taken it already).
    m.region->write_block(slot, fi, static_cast<std::uint32_t>(f.gen), blk, {buf.data(), len}, m.region->next_seq());
    if (auto again = m.index.find(Impl::key(fi, blk)); again != m.index.end()) m.drop_slot(again->second);
    m.slots[slot] = {true, fi, blk};
    m.index[Impl::key(fi, blk)] = slot;
    done += chunk;
    tries = 0;
  }
  if (off + data.size() > f.size) {
    f.size = off + data.size();
    m.region->set_file_size(fi, f.size);
  }
  return data.size();
}

Result<std::size_t> Cache::read(int fd, std::span<std::byte> out, std::uint64_t off) {
  Impl& m = *impl_;
  m.yield_to_writeback();
  std::lock_guard g(m.mu);
  const std::uint32_t fi = WARD_TRY(m.file_of(fd));
  Impl::File& f = m.files[fi];
  ++m.st.reads;
  if (!m.region) {
    if (off >= f.size) return 0;
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), f.size - off));
    (void)WARD_TRY(m.read_through(fi, out.data(), off, n, false));
    return n;
  }
  const std::uint64_t bs = m.bs();
  // Blocks the cache does not hold are read through without the lock. If a block of the file
  // went away meanwhile (eviction, truncate, unlink), the backing file may have changed under
  // the pread: start over (the size may have moved too); after kLockedAfter tries, read under
  // the lock, so the read ends whatever the other threads do.
  for (int attempt = 0;; ++attempt) {
    if (off >= f.size) return 0;
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), f.size - off));
    std::size_t done = 0;
    bool all_hit = true, overtaken = false;
    while (done < n && !overtaken) {
      const std::uint64_t pos = off + done;
      const std::uint64_t blk = pos / bs, boff = pos % bs;
      const std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(bs - boff, n - done));
      auto it = m.index.find(Impl::key(fi, blk));
      if (it != m.index.end()) {
        const std::uint32_t s = it->second;
        const std::uint64_t len = m.region->entry(s).len;
        const std::size_t have = boff < len ? static_cast<std::size_t>(std::min<std::uint64_t>(chunk, len - boff)) : 0;
        std::memcpy(out.data() + done, m.region->block(s) + boff, have);
        if (have < chunk) std::memset(out.data() + done + have, 0, chunk - have);
      } else {
        all_hit = false;
        overtaken = !WARD_TRY(m.read_through(fi, out.data() + done, pos, chunk, attempt < Impl::kLockedAfter));
        // A version published during the pread wins: the next pass over this block is a hit.
        if (overtaken || m.index.contains(Impl::key(fi, blk))) continue;
      }
      done += chunk;
    }
    if (overtaken) continue;
    if (all_hit) ++m.st.read_hits;
    return n;
  }
}

Result<void> Cache::fsync(int fd) {
  Impl& m = *impl_;
  std::unique_lock g(m.mu);
  const std::uint32_t fi = WARD_TRY(m.file_of(fd));
  ++m.st.fsyncs;
  if (m.region) {
    // rio: the data is already safe. Synced regions msync what changed — without `mu`, so other
    // threads' reads and writes go on meanwhile (one flush at a time: wb_mu).
    if (!m.synced()) return {};
    g.unlock();
    Impl::IoLock io(m);
    return m.durability_point_unlocked();
  }
  if (m.opt.mode == Mode::write_through) {
    const int bfd = WARD_TRY(m.backing_fd(fi));
    if (fdatasync(bfd) != 0) return fail(Errc::limit, "rio: fdatasync: " + std::string(std::strerror(errno)));
  }
  return {};
}

Result<void> Cache::truncate(int fd, std::uint64_t size) {
  Impl& m = *impl_;
  Impl::IoLock io(m);
  std::lock_guard g(m.mu);
  const std::uint32_t fi = WARD_TRY(m.file_of(fd));
  Impl::File& f = m.files[fi];
  if (!m.region) {
    const int bfd = WARD_TRY(m.backing_fd(fi));
    if (ftruncate(bfd, static_cast<off_t>(size)) != 0) return fail(Errc::limit, "rio: ftruncate: " + std::string(std::strerror(errno)));
    if (m.opt.mode == Mode::write_through) (void)fdatasync(bfd);
    f.size = size;
    return {};
  }
  const std::uint64_t bs = m.bs();
  const std::uint64_t old_size = f.size;
  ++f.epoch;  // read-throughs in progress read again
  if (size > old_size)
    WARD_TRY(m.trim_end_block(fi));
  // Size first: recovery discards anything past it, so a crash mid-truncate cannot resurrect.
  f.size = size;
  m.region->set_file_size(fi, size);
  if (size < old_size) {
    std::vector<std::uint32_t> gone;
    for (auto& [k, s] : m.index)
      if ((k >> 40) == fi && m.slots[s].block * bs >= size) gone.push_back(s);
    for (std::uint32_t s : gone) m.drop_slot(s);
    // The block that now holds the end: a new version cut at the new size.
    WARD_TRY(m.trim_end_block(fi));
    // Synced regions: two durability points make the new size, the cut block and the free marks
    // of the dropped versions durable — before the backing file shrinks (else a power cut could
    // leave a shorter backing file under the old size: the tail would come back as zeros), and
    // before any later growth of the file could reach the disk and make them part of it again.
    for (int i = 0; i < 2; ++i) WARD_TRY(m.durability_point());
    // The backing file must not keep bytes past the new end either: a later extension of the
    // file would otherwise read them back through the read-through path.
    const int bfd = WARD_TRY(m.backing_fd(fi));
    struct stat sb {};
    if (fstat(bfd, &sb) == 0 && static_cast<std::uint64_t>(sb.st_size) > size &&
        ftruncate(bfd, static_cast<off_t>(size)) != 0)
      return fail(Errc::limit, "rio: " + f.path + ": truncating the backing file: " + std::strerror(errno));
  }
  return {};
}

Result<std::uint64_t> Cache::size(int fd) {
  Impl& m = *impl_;
  std::lock_guard g(m.mu);
  const std::uint32_t fi = WARD_TRY(m.file_of(fd));
  return m.files[fi].size;
}

Result<void> Cache::close(int fd) {
  Impl& m = *impl_;
  std::lock_guard g(m.mu);
  if (m.fds.erase(fd) == 0) return fail(Errc::misuse, "rio: bad file descriptor " + std::to_string(fd));
  return {};
}

Result<void> Cache::unlink(std::string_view path) {
  Impl& m = *impl_;
  Impl::IoLock io(m);
  std::lock_guard g(m.mu);
  std::uint32_t fi = ~0u;
  for (std::uint32_t i = 0; i < m.files.size(); ++i)
    if (m.files[i].used && m.files[i].path == path) fi = i;
  const fs::path full = m.opt.backing_dir / std::string(path);
  if (fi == ~0u) {
    if (::unlink(full.c_str()) != 0) return fail(Errc::misuse, "rio: " + std::string(path) + ": " + std::strerror(errno));
    return {};
  }
  // Order, so that a crash anywhere leaves the file whole or gone, never the written-back part
  // without the cached part: mark the entry "unlinking" (recovery finishes any unlink it finds
  // so marked; synced: made durable), remove the backing file (synced: and sync the directory),
  // then free the entry (synced: durable before returning, so a name reused later is never
  // removed by a recovery that finds the old mark).
  Impl::File& f = m.files[fi];
  if (m.region) {
    m.region->set_file_state(fi, L::kFileUnlinking);
    WARD_TRY(m.durability_point());
  }
  f.backing.reset();  // closed once no read-through or write-back round uses it
  ++f.epoch;
  if (::unlink(full.c_str()) != 0 && errno != ENOENT)
    return fail(Errc::limit, "rio: " + std::string(path) + ": " + std::strerror(errno));
  if (m.region && m.region->durability() == Durability::synced) WARD_TRY(detail::sync_dir(full.parent_path()));
  if (m.region) {
    std::vector<std::uint32_t> gone;
    for (auto& [k, s] : m.index)
      if ((k >> 40) == fi) gone.push_back(s);
    m.region->set_file_state(fi, L::kFileFree);
    for (std::uint32_t s : gone) m.drop_slot(s);
    WARD_TRY(m.durability_point());
  }
  f.used = false;
  std::erase_if(m.fds, [&](const auto& kv) { return kv.second == fi; });
  return {};
}

Result<void> Cache::flush() {
  Impl& m = *impl_;
  if (m.region) {
    Impl::IoLock io(m);
    return m.write_back_round(Impl::Pick::all, 0);
  }
  std::lock_guard g(m.mu);
  for (auto& f : m.files)
    if (f.used && f.backing) (void)fdatasync(f.backing->fd);
  return {};
}

CacheStats Cache::stats() const {
  const Impl& m = *impl_;
  std::lock_guard g(m.mu);
  CacheStats s = m.st;
  if (m.region) {
    s.blocks_total = m.region->nblocks();
    for (std::uint32_t i = 0; i < s.blocks_total; ++i) {
      switch (L::word_state(m.region->entry(i).word.load())) {
        case L::kDirty: ++s.blocks_dirty; break;
        case L::kClean: ++s.blocks_clean; break;
        case L::kFree: ++s.blocks_free; break;
        default: break;
      }
    }
  }
  return s;
}

}  // namespace ward::rio
