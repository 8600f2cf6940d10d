#include "ward/rio/region.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "rio/private_path.h"

namespace ward::rio {
namespace L = layout;
namespace fs = std::filesystem;

namespace {

std::string sys(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

std::uint64_t page_size() { return static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE)); }

std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

std::uint64_t geometry_checksum(const L::Header& h) {
  return XXH3_64bits(&h, offsetof(L::Header, geometry_checksum));
}

std::uint64_t realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

// The checks every reader of a region file makes before trusting its geometry.
Result<void> validate(int fd, const std::filesystem::path& path, std::uint64_t file_size) {
  if (file_size < L::kHeaderSize)
    return fail(Errc::load_failed, "rio: " + path.string() + " is too short to be a region (" + std::to_string(file_size) + " bytes)");
  L::Header h;
  if (pread(fd, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) return fail(Errc::load_failed, "rio: " + sys("read header"));
  if (h.magic != L::kMagic) return fail(Errc::load_failed, "rio: " + path.string() + " is not a ward rio region (bad magic)");
  if (h.version != L::kVersion)
    return fail(Errc::load_failed, "rio: region version " + std::to_string(h.version) + ", this ward reads version " +
                                       std::to_string(L::kVersion));
  if (h.geometry_checksum != geometry_checksum(h)) return fail(Errc::load_failed, "rio: region header is damaged (geometry checksum)");
  if (h.region_size != file_size)
    return fail(Errc::load_failed, "rio: region file is truncated or extended: header says " + std::to_string(h.region_size) +
                                       " bytes, the file has " + std::to_string(file_size));
  if (h.files_off < L::kHeaderSize || h.registry_off < h.files_off + std::uint64_t{h.nfiles} * sizeof(L::FileEntry) ||
      h.data_off < h.registry_off + std::uint64_t{h.nblocks} * sizeof(L::Entry) ||
      h.data_off + std::uint64_t{h.nblocks} * h.block_size > h.region_size || h.block_size == 0)
    return fail(Errc::load_failed, "rio: region geometry is inconsistent");
  return {};
}

// A region being created: a fresh private file beside its final path, removed unless published.
struct NewFile {
  std::string path;  // empty: not creating
  bool lost_race = false;
  NewFile() = default;
  NewFile(const NewFile&) = delete;
  NewFile& operator=(const NewFile&) = delete;
  ~NewFile() {
    if (!path.empty()) ::unlink(path.c_str());
  }
  // Gives the file its final name, unless something has that name already (then lost_race).
  // `durable`: the directory entry is fsynced too, so a power cut cannot lose the name.
  Result<void> publish(const fs::path& final_path, bool durable) {
    if (renameat2(AT_FDCWD, path.c_str(), AT_FDCWD, final_path.c_str(), RENAME_NOREPLACE) != 0) {
      if (errno == EEXIST) {
        lost_race = true;
        return {};
      }
      return fail(Errc::load_failed, "rio: cannot create the region " + final_path.string() + ": " + std::strerror(errno));
    }
    path.clear();
    if (durable) {
      const fs::path dir = final_path.has_parent_path() ? final_path.parent_path() : fs::path(".");
      const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      const bool ok = dfd >= 0 && fsync(dfd) == 0;
      if (dfd >= 0) ::close(dfd);
      if (!ok) return fail(Errc::load_failed, "rio: fsync of " + dir.string() + " failed");
    }
    return {};
  }
};

}  // namespace

std::string_view to_string(Protection p) noexcept {
  switch (p) {
    case Protection::off: return "off";
    case Protection::mprotect: return "mprotect";
    case Protection::alias: return "alias";
    case Protection::pkeys: return "pkeys";
  }
  return "unknown";
}

Result<Protection> parse_protection(std::string_view s) {
  for (Protection p : {Protection::off, Protection::mprotect, Protection::alias, Protection::pkeys})
    if (s == to_string(p)) return p;
  return fail(Errc::misuse, "unknown protection mode '" + std::string(s) + "' (off, mprotect, alias, pkeys)");
}

bool pkeys_available() {
  const int k = pkey_alloc(0, 0);
  if (k < 0) return false;
  pkey_free(k);
  return true;
}

std::uint64_t block_checksum(std::span<const std::byte> data, std::uint32_t file, std::uint32_t file_gen, std::uint64_t block,
                             std::uint64_t seq) {
  const std::uint64_t meta[4] = {file | (static_cast<std::uint64_t>(file_gen) << 32), block, data.size(), seq};
  const std::uint64_t seed = XXH3_64bits(meta, sizeof meta);
  return XXH3_64bits_withSeed(data.data(), data.size(), seed);
}

Result<Views> map_views(int fd, std::uint64_t size, Protection p) {
  const int view = p == Protection::off ? PROT_READ | PROT_WRITE : PROT_READ;
  void* ro = mmap(nullptr, size, view, MAP_SHARED, fd, 0);
  if (ro == MAP_FAILED) return fail(Errc::load_failed, "rio: " + sys("mmap"));
  Views v{static_cast<std::byte*>(ro), static_cast<std::byte*>(ro)};
  if (p == Protection::alias) {
    // The hidden alias: a second shared mapping of the same file, placed by the kernel at an
    // address nothing but the caller knows.
    void* rw = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (rw == MAP_FAILED) {
      const std::string why = sys("mmap alias");
      munmap(ro, size);
      return fail(Errc::load_failed, "rio: " + why);
    }
    v.rw = static_cast<std::byte*>(rw);
  }
  return v;
}

void unmap_views(Views v, std::uint64_t size) {
  if (v.rw && v.rw != v.ro) munmap(v.rw, size);
  if (v.ro) munmap(v.ro, size);
}

Result<std::unique_ptr<Region>> Region::open(const RegionOptions& opt) {
  if (opt.path.empty()) return fail(Errc::misuse, "rio: no region path given");
  if (opt.protection == Protection::pkeys && !pkeys_available())
    return fail(Errc::misuse, "rio: memory protection keys are not available on this CPU/kernel (no 'pku'); "
                              "use --protection alias or mprotect");
  std::unique_ptr<Region> r(new Region());
  r->path_ = opt.path;
  r->prot_ = opt.protection;
  r->dur_ = opt.durability;
  // An existing region is reopened only if it is ours and private (see private_path.h); a new one
  // is built in a fresh file created exclusively beside it and renamed into place without
  // replacing anything, so the path never names a half-built region and nothing planted there
  // is used, followed or overwritten.
  const fs::path dir = opt.path.has_parent_path() ? opt.path.parent_path() : fs::path(".");
  WARD_TRY(check_trusted_dir(dir));
  NewFile fresh;
  r->fd_ = ::open(opt.path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (r->fd_ < 0 && errno == ENOENT && opt.create) {
    std::string tmpl = opt.path.string() + ".new-XXXXXX";
    r->fd_ = mkostemp(tmpl.data(), O_CLOEXEC);  // O_EXCL, mode 0600
    if (r->fd_ < 0) return fail(Errc::load_failed, "rio: cannot create a region beside " + opt.path.string() + ": " + std::strerror(errno));
    fresh.path = tmpl;
  }
  if (r->fd_ < 0) {
    if (errno == ELOOP)
      return fail(Errc::misuse, "rio: " + opt.path.string() + " is a symbolic link; ward does not follow links to regions");
    return fail(Errc::load_failed, "rio: " + sys(opt.path.c_str()));
  }
  struct stat st {};
  if (fstat(r->fd_, &st) != 0) return fail(Errc::load_failed, "rio: " + sys("fstat"));
  if (fresh.path.empty()) WARD_TRY(check_private_file(st, opt.path));
  if (flock(r->fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      std::uint32_t pid = 0;
      (void)!pread(r->fd_, &pid, sizeof pid, offsetof(L::Header, owner_pid));
      return fail(Errc::misuse, "rio: region " + opt.path.string() + " is in use by another process (pid " +
                                    std::to_string(pid) + ")");
    }
    return fail(Errc::load_failed, "rio: " + sys("flock"));
  }
  const std::uint64_t pg = page_size();

  if (fresh.path.empty() && st.st_size == 0)
    return fail(Errc::load_failed, "rio: " + opt.path.string() +
                                       " exists and is empty: not a region (ward creates a region only where no file exists)");
  if (!fresh.path.empty()) {
    // Create: geometry first, then zeroed tables, then the header last (magic makes it a region).
    const std::uint32_t bs = opt.block_size;
    if (bs < 512 || bs > (1u << 20) || (bs & (bs - 1)) != 0)
      return fail(Errc::misuse, "rio: block size must be a power of two from 512 to 1 MiB");
    if (opt.files == 0 || opt.files > 65536) return fail(Errc::misuse, "rio: file table size must be 1..65536");
    L::Header h{};
    h.magic = L::kMagic;
    h.version = L::kVersion;
    h.header_size = L::kHeaderSize;
    h.block_size = bs;
    h.nfiles = opt.files;
    h.files_off = L::kHeaderSize;
    h.registry_off = align_up(h.files_off + std::uint64_t{opt.files} * sizeof(L::FileEntry), pg);
    const std::uint64_t size = align_up(opt.size, pg);
    if (size <= h.registry_off) return fail(Errc::misuse, "rio: region of " + std::to_string(opt.size) + " bytes is too small");
    // Registry and data share the rest: nblocks * (64 + bs) plus alignment of the data area.
    std::uint64_t n = (size - h.registry_off) / (sizeof(L::Entry) + bs);
    while (n > 0 && align_up(h.registry_off + n * sizeof(L::Entry), pg) + n * bs > size) --n;
    if (n < 16)
      return fail(Errc::misuse, "rio: region of " + std::to_string(opt.size) + " bytes is too small: it must hold at least 16 blocks of " +
                                    std::to_string(bs) + " bytes plus its tables (about " +
                                    std::to_string((h.registry_off + 16 * (bs + 64) + 2 * pg) >> 10) + " KiB)");
    if (n > 0xFFFFFFF0u) return fail(Errc::misuse, "rio: too many blocks");
    h.nblocks = static_cast<std::uint32_t>(n);
    h.data_off = align_up(h.registry_off + n * sizeof(L::Entry), pg);
    h.region_size = size;
    h.geometry_checksum = geometry_checksum(h);
    h.generation.store(1);
    h.clean.store(1);
    h.next_seq.store(1);
    // Reserve every page now (tmpfs included): a store into a page the file system cannot back
    // would kill the program with SIGBUS later; here it is an error. Tables are zero (free).
    if (const int e = posix_fallocate(r->fd_, 0, static_cast<off_t>(size)); e != 0)
      return fail(e == ENOSPC || e == EFBIG || e == EDQUOT ? Errc::limit : Errc::load_failed,
                  "rio: cannot reserve " + std::to_string(size) + " bytes for the region " + opt.path.string() + ": " +
                      std::strerror(e));
    if (pwrite(r->fd_, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) return fail(Errc::load_failed, "rio: " + sys("pwrite header"));
    if (opt.durability == Durability::synced && fsync(r->fd_) != 0) return fail(Errc::load_failed, "rio: " + sys("fsync"));
    WARD_TRY(fresh.publish(opt.path, opt.durability == Durability::synced));
    if (fresh.lost_race) {  // another process created it meanwhile: open theirs (ours is removed)
      RegionOptions again = opt;
      again.create = false;
      return open(again);
    }
    r->created_ = true;
    st.st_size = static_cast<off_t>(size);
  }

  // Validate before mapping the whole thing.
  WARD_TRY(validate(r->fd_, opt.path, static_cast<std::uint64_t>(st.st_size)));
  r->size_ = static_cast<std::uint64_t>(st.st_size);

  // Map. Protected modes: the program's view is read-only from the start.
  const Views v = WARD_TRY(map_views(r->fd_, r->size_, r->prot_));
  r->ro_ = v.ro;
  r->rw_ = v.rw;
  if (r->prot_ == Protection::pkeys) {
    r->pkey_ = pkey_alloc(0, PKEY_DISABLE_WRITE);
    if (r->pkey_ < 0 || pkey_mprotect(r->ro_, r->size_, PROT_READ | PROT_WRITE, r->pkey_) != 0)
      return fail(Errc::load_failed, "rio: " + sys("pkey_mprotect"));
  }
  r->was_clean_ = r->header().clean.load() == 1;
  // Sequence numbers stay monotonic across crashes without a store per update: start above
  // both the header's record (written at clean close) and every version in the registry.
  r->seq_ = std::max<std::uint64_t>(r->header().next_seq.load(), 1);
  for (std::uint32_t i = 0; i < r->nblocks(); ++i)
    r->seq_ = std::max(r->seq_, L::word_seq(r->entry(i).word.load(std::memory_order_relaxed)) + 1);
  // This owner now holds it: not clean until a clean close.
  r->with_write(0, L::kHeaderSize, [&] {
    auto* hw = reinterpret_cast<L::Header*>(r->rw(0));
    hw->owner_pid.store(static_cast<std::uint32_t>(getpid()));
    hw->generation.fetch_add(1);
    hw->clean.store(0);
  });
  return r;
}

Region::~Region() {
  unmap_views({ro_, rw_}, size_);
  if (pkey_ >= 0) pkey_free(pkey_);
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

const L::FileEntry& Region::file(std::uint32_t i) const {
  return reinterpret_cast<const L::FileEntry*>(ro_ + header().files_off)[i];
}

const L::Entry& Region::entry(std::uint32_t slot) const {
  return reinterpret_cast<const L::Entry*>(ro_ + header().registry_off)[slot];
}

const std::byte* Region::block(std::uint32_t slot) const {
  return ro_ + header().data_off + std::uint64_t{slot} * header().block_size;
}

bool Region::entry_valid(std::uint32_t slot) const {
  const L::Entry& e = entry(slot);
  const std::uint64_t w = e.word.load(std::memory_order_acquire);
  if (e.len > block_size()) return false;
  return e.checksum == block_checksum({block(slot), e.len}, e.file, e.file_gen, e.block, L::word_seq(w));
}

template <class F>
void Region::with_write(std::uint64_t off, std::uint64_t len, F&& f) {
  switch (prot_) {
    case Protection::off:
    case Protection::alias: f(); return;
    case Protection::mprotect: {
      const std::uint64_t pg = page_size();
      const std::uint64_t a = off / pg * pg, b = align_up(off + len, pg);
      mprotect(ro_ + a, b - a, PROT_READ | PROT_WRITE);
      f();
      mprotect(ro_ + a, b - a, PROT_READ);
      return;
    }
    case Protection::pkeys:
      pkey_set(pkey_, 0);
      f();
      pkey_set(pkey_, PKEY_DISABLE_WRITE);
      return;
  }
}

void Region::write_block(std::uint32_t slot, std::uint32_t file, std::uint32_t file_gen, std::uint64_t blk,
                         std::span<const std::byte> data, std::uint64_t seq) {
  const L::Header& h = header();
  const std::uint64_t data_off = h.data_off + std::uint64_t{slot} * h.block_size;
  const std::uint64_t entry_off = h.registry_off + std::uint64_t{slot} * sizeof(L::Entry);
  const auto len = static_cast<std::uint32_t>(data.size());
  with_write(data_off, data.size(), [&] { std::memcpy(rw(data_off), data.data(), data.size()); });
  with_write(entry_off, sizeof(L::Entry), [&] {
    auto* e = reinterpret_cast<L::Entry*>(rw(entry_off));
    e->file = file;
    e->file_gen = file_gen;
    e->block = blk;
    e->len = len;
    e->checksum = block_checksum(data, file, file_gen, blk, seq);
    e->stamp_ns = realtime_ns();
    // Publish: everything above is visible before the word says "dirty, seq".
    e->word.store(L::make_word(seq, L::kDirty), std::memory_order_release);
  });
}

void Region::set_state(std::uint32_t slot, L::State s) {
  const std::uint64_t entry_off = header().registry_off + std::uint64_t{slot} * sizeof(L::Entry);
  with_write(entry_off, sizeof(L::Entry), [&] {
    auto* e = reinterpret_cast<L::Entry*>(rw(entry_off));
    const std::uint64_t w = e->word.load(std::memory_order_relaxed);
    e->word.store(s == L::kFree ? 0 : L::make_word(L::word_seq(w), s), std::memory_order_release);
  });
}

void Region::set_file(std::uint32_t i, std::uint64_t gen, std::string_view p, std::uint64_t size) {
  const std::uint64_t off = header().files_off + std::uint64_t{i} * sizeof(L::FileEntry);
  with_write(off, sizeof(L::FileEntry), [&] {
    auto* f = reinterpret_cast<L::FileEntry*>(rw(off));
    std::memset(f->path, 0, sizeof f->path);
    std::memcpy(f->path, p.data(), std::min(p.size(), sizeof f->path - 1));
    f->path_len = static_cast<std::uint32_t>(std::min(p.size(), sizeof f->path - 1));
    f->size.store(size, std::memory_order_relaxed);
    f->word.store(L::make_file_word(gen, true), std::memory_order_release);
  });
}

void Region::free_file(std::uint32_t i) {
  const std::uint64_t off = header().files_off + std::uint64_t{i} * sizeof(L::FileEntry);
  with_write(off, sizeof(L::FileEntry), [&] {
    auto* f = reinterpret_cast<L::FileEntry*>(rw(off));
    const std::uint64_t w = f->word.load(std::memory_order_relaxed);
    f->word.store(L::make_file_word(L::file_gen(w), false), std::memory_order_release);
  });
}

void Region::set_file_size(std::uint32_t i, std::uint64_t size) {
  const std::uint64_t off = header().files_off + std::uint64_t{i} * sizeof(L::FileEntry);
  with_write(off, sizeof(L::FileEntry), [&] {
    reinterpret_cast<L::FileEntry*>(rw(off))->size.store(size, std::memory_order_release);
  });
}

std::uint64_t Region::next_seq() { return seq_++; }

void Region::set_clean(bool clean) {
  with_write(0, L::kHeaderSize, [&] {
    auto* h = reinterpret_cast<L::Header*>(rw(0));
    h->next_seq.store(seq_);
    h->clean.store(clean ? 1 : 0);
  });
}

void Region::set_backing_dir(std::string_view dir) {
  with_write(0, L::kHeaderSize, [&] {
    auto* h = reinterpret_cast<L::Header*>(rw(0));
    std::memset(h->backing_dir, 0, sizeof h->backing_dir);
    std::memcpy(h->backing_dir, dir.data(), std::min(dir.size(), sizeof h->backing_dir - 1));
  });
}

std::string Region::backing_dir() const {
  const auto& b = header().backing_dir;
  return std::string(b, strnlen(b, sizeof b));
}

Result<Inspection> inspect(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return fail(Errc::load_failed, "rio: " + sys(path.c_str()));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (fstat(fd, &st) != 0) return fail(Errc::load_failed, "rio: " + sys("fstat"));
  WARD_TRY(validate(fd, path, static_cast<std::uint64_t>(st.st_size)));
  Inspection in;
  in.in_use = flock(fd, LOCK_SH | LOCK_NB) != 0;
  void* m = mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) return fail(Errc::load_failed, "rio: " + sys("mmap"));
  const auto* base = static_cast<const std::byte*>(m);
  const auto& h = *reinterpret_cast<const L::Header*>(base);
  in.region_size = h.region_size;
  in.generation = h.generation.load();
  in.version = h.version;
  in.block_size = h.block_size;
  in.nblocks = h.nblocks;
  in.nfiles = h.nfiles;
  in.clean = h.clean.load() == 1;
  in.owner_pid = h.owner_pid.load();
  in.backing_dir.assign(h.backing_dir, strnlen(h.backing_dir, sizeof h.backing_dir));
  const auto* files = reinterpret_cast<const L::FileEntry*>(base + h.files_off);
  const auto* entries = reinterpret_cast<const L::Entry*>(base + h.registry_off);
  std::vector<int> file_row(h.nfiles, -1);
  for (std::uint32_t f = 0; f < h.nfiles; ++f) {
    if (!L::file_used(files[f].word.load())) continue;
    file_row[f] = static_cast<int>(in.files.size());
    in.files.push_back({std::string(files[f].path, std::min<std::size_t>(files[f].path_len, L::kPathMax - 1)), files[f].size.load(), 0, 0});
  }
  for (std::uint32_t s = 0; s < h.nblocks; ++s) {
    const L::Entry& e = entries[s];
    const std::uint64_t w = e.word.load();
    const L::State state = L::word_state(w);
    const bool known = e.file < h.nfiles && file_row[e.file] >= 0 && L::file_gen(files[e.file].word.load()) == e.file_gen;
    const std::string name = known ? in.files[static_cast<std::size_t>(file_row[e.file])].path : "?";
    switch (state) {
      case L::kFree: ++in.free; continue;
      case L::kQuarantined:
        ++in.quarantined;
        in.corrupt.push_back({s, name, e.block, "quarantined by an earlier recovery"});
        continue;
      case L::kDirty: ++in.dirty; break;
      case L::kClean: ++in.clean_blocks; break;
      default: in.corrupt.push_back({s, name, e.block, "unknown state"}); continue;
    }
    const bool ok = e.len <= h.block_size &&
                    e.checksum == block_checksum({base + h.data_off + std::uint64_t{s} * h.block_size, e.len}, e.file, e.file_gen,
                                                 e.block, L::word_seq(w));
    if (!ok) in.corrupt.push_back({s, name, e.block, "checksum mismatch"});
    if (known) {
      auto& row = in.files[static_cast<std::size_t>(file_row[e.file])];
      state == L::kDirty ? ++row.dirty : ++row.clean;
    }
  }
  munmap(m, static_cast<std::size_t>(st.st_size));
  return in;
}

Result<void> Region::flush() {
  if (dur_ != Durability::synced) return {};
  if (msync(ro_, size_, MS_SYNC) != 0) return fail(Errc::limit, "rio: " + sys("msync"));
  return {};
}

}  // namespace ward::rio
