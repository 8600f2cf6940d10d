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
#include <optional>
#include <utility>

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

// A hash of this boot's id: the header records it, so recovery knows whether a reboot (and so
// possibly a power cut) came between the previous owner and now.
void current_boot(std::uint64_t out[2]) {
  char id[64] = {};
  const int fd = ::open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    (void)!::read(fd, id, sizeof id - 1);
    ::close(fd);
  }
  const XXH128_hash_t h = XXH3_128bits(id, strnlen(id, sizeof id));
  out[0] = h.low64;
  out[1] = h.high64;
}


// The header state a fresh region starts with (copy 0; copy 1 stays zero, which fails its check).
void initial_state(L::Header& h) {
  L::HeaderState& st = h.state[0];
  st.counter = 1;
  st.generation = 1;
  st.next_seq = 1;
  st.clean = 1;
  st.checksum = header_state_checksum(st);
}

// The newer of the header's two state copies that passes its checksum; index in `which`.
std::optional<L::HeaderState> read_state(const L::Header& h, int* which = nullptr) {
  std::optional<L::HeaderState> best;
  for (int i = 0; i < 2; ++i) {
    L::HeaderState c;
    std::memcpy(&c, &h.state[i], sizeof c);  // a copy: a live owner may be rewriting it
    if (c.checksum != header_state_checksum(c) || (best && c.counter <= best->counter)) continue;
    best = c;
    if (which) *which = i;
  }
  return best;
}

// The pid recorded by the region's current owner (0 if unreadable).
std::uint32_t owner_pid_of(int fd) {
  L::Header h;
  if (pread(fd, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) return 0;
  auto st = read_state(h);
  return st ? st->owner_pid : 0;
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

// Removes what creators of `base` that died between mkostemp and the rename left in `dir`:
// regular files named `base`.new-XXXXXX, owned by this user, that nobody holds locked (a live
// creator locks its file right after creating it). Never follows a link; skips anything else.
void remove_stale_new_files(const fs::path& dir, const std::string& base) {
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return;
  std::error_code ec;
  const std::string prefix = base + ".new-";
  for (const auto& de : fs::directory_iterator(dir, ec)) {
    const std::string name = de.path().filename().string();
    if (name.size() != prefix.size() + 6 || name.compare(0, prefix.size(), prefix) != 0) continue;
    const int fd = ::openat(dfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st {};
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() && flock(fd, LOCK_EX | LOCK_NB) == 0)
      (void)::unlinkat(dfd, name.c_str(), 0);
    ::close(fd);
  }
  ::close(dfd);
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

std::uint64_t header_state_checksum(const L::HeaderState& st) { return XXH3_64bits(&st, offsetof(L::HeaderState, checksum)); }

std::uint64_t path_checksum(std::string_view path, std::uint64_t gen) { return XXH3_64bits_withSeed(path.data(), path.size(), gen); }

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
    remove_stale_new_files(dir, opt.path.filename().string());
    std::string tmpl = opt.path.string() + ".new-XXXXXX";
    r->fd_ = mkostemp(tmpl.data(), O_CLOEXEC);  // O_EXCL, mode 0600
    if (r->fd_ < 0) return fail(Errc::load_failed, "rio: cannot create a region beside " + opt.path.string() + ": " + std::strerror(errno));
    fresh.path = tmpl;
    if (flock(r->fd_, LOCK_EX | LOCK_NB) != 0) return fail(Errc::load_failed, "rio: " + sys("flock"));  // see remove_stale_new_files
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
      const std::uint32_t pid = owner_pid_of(r->fd_);
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
    initial_state(h);
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
  // The previous owner's state. Damaged (both copies fail their checks): nothing in it is
  // trusted — recovery reports it, the backing directory must be given again.
  int which = -1;
  if (auto prev = read_state(r->header(), &which)) {
    r->st_ = *prev;
    r->cur_ = which;
    std::uint64_t boot[2];
    current_boot(boot);
    r->prev_ = {prev->synced == 1, prev->synced_seq, false, prev->boot_id[0] != boot[0] || prev->boot_id[1] != boot[1]};
  } else {
    r->st_ = {};
    r->st_.counter = std::max(r->header().state[0].counter, r->header().state[1].counter);
    r->prev_.damaged = true;
  }
  r->was_clean_ = !r->prev_.damaged && r->st_.clean == 1;
  // Sequence numbers stay monotonic across crashes without a store per update: start above
  // both the header's record (written at clean close) and every version in the registry.
  r->seq_ = std::max<std::uint64_t>(r->st_.next_seq, 1);
  for (std::uint32_t i = 0; i < r->nblocks(); ++i) {
    const std::uint64_t w = r->entry(i).word.load(std::memory_order_relaxed);
    if (L::word_ok(w)) r->seq_ = std::max(r->seq_, L::word_seq(w) + 1);
  }
  if (r->dur_ == Durability::synced) r->page_dirty_.assign((r->size_ + pg - 1) / pg, 0);
  // This owner now holds it: not clean until a clean close.
  r->st_.owner_pid = static_cast<std::uint32_t>(getpid());
  ++r->st_.generation;
  r->st_.clean = 0;
  r->st_.synced = r->dur_ == Durability::synced ? 1 : 0;
  current_boot(r->st_.boot_id);
  r->store_state();
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
  if (!page_dirty_.empty() && len > 0) {  // synced: remember what the next flush must msync
    const std::uint64_t pg = page_size();
    for (std::uint64_t p = off / pg; p <= (off + len - 1) / pg; ++p)
      if (!page_dirty_[p]) {
        page_dirty_[p] = 1;
        dirty_pages_.push_back(p);
      }
  }
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
  const std::string_view path = p.substr(0, std::min(p.size(), sizeof(L::FileEntry::path) - 1));
  with_write(off, sizeof(L::FileEntry), [&] {
    auto* f = reinterpret_cast<L::FileEntry*>(rw(off));
    std::memset(f->path, 0, sizeof f->path);
    std::memcpy(f->path, path.data(), path.size());
    f->path_len = static_cast<std::uint32_t>(path.size());
    f->path_check = path_checksum(path, gen);
    f->size_word.store(L::make_size_word(size, gen), std::memory_order_relaxed);
    // Publish: the path, its check and the size are in place before the word names the file.
    f->word.store(L::make_file_word(gen, L::kFileUsed), std::memory_order_release);
  });
}

void Region::set_file_state(std::uint32_t i, L::FileState s) {
  const std::uint64_t off = header().files_off + std::uint64_t{i} * sizeof(L::FileEntry);
  with_write(off, sizeof(L::FileEntry), [&] {
    auto* f = reinterpret_cast<L::FileEntry*>(rw(off));
    f->word.store(L::make_file_word(L::file_gen(f->word.load(std::memory_order_relaxed)), s), std::memory_order_release);
  });
}

void Region::set_file_size(std::uint32_t i, std::uint64_t size) {
  const std::uint64_t off = header().files_off + std::uint64_t{i} * sizeof(L::FileEntry);
  with_write(off, sizeof(L::FileEntry), [&] {
    auto* f = reinterpret_cast<L::FileEntry*>(rw(off));
    f->size_word.store(L::make_size_word(size, L::file_gen(f->word.load(std::memory_order_relaxed))), std::memory_order_release);
  });
}

bool Region::file_valid(std::uint32_t i) const {
  const L::FileEntry& f = file(i);
  const std::uint64_t w = f.word.load(std::memory_order_acquire);
  if (!L::check_ok(w)) return false;
  const L::FileState s = L::file_state(w);
  if (s == L::kFileFree) return true;
  if (s != L::kFileUsed && s != L::kFileUnlinking) return false;
  const std::uint64_t gen = L::file_gen(w);
  return L::size_ok(f.size_word.load(), gen) && f.path_len < L::kPathMax &&
         f.path_check == path_checksum({f.path, f.path_len}, gen);
}

std::uint64_t Region::file_size(std::uint32_t i) const { return L::size_of(file(i).size_word.load(std::memory_order_acquire)); }

std::string Region::file_path(std::uint32_t i) const {
  const L::FileEntry& f = file(i);
  return std::string(f.path, std::min<std::size_t>(f.path_len, L::kPathMax - 1));
}

std::uint64_t Region::next_seq() { return seq_++; }

void Region::store_state() {
  const int target = cur_ == 0 ? 1 : 0;
  ++st_.counter;
  st_.checksum = header_state_checksum(st_);
  const std::uint64_t off = offsetof(L::Header, state) + static_cast<std::uint64_t>(target) * sizeof(L::HeaderState);
  with_write(off, sizeof(L::HeaderState), [&] {
    auto* dst = reinterpret_cast<L::HeaderState*>(rw(off));
    // A kill inside leaves this copy failing its checksum and the other one intact.
    std::memcpy(dst, &st_, offsetof(L::HeaderState, checksum));
    std::atomic_ref<std::uint64_t>(dst->checksum).store(st_.checksum, std::memory_order_release);
  });
  cur_ = target;
}

void Region::set_clean(bool clean) {
  st_.next_seq = seq_;
  st_.clean = clean ? 1 : 0;
  store_state();
}

void Region::set_backing_dir(std::string_view dir) {
  std::memset(st_.backing_dir, 0, sizeof st_.backing_dir);
  std::memcpy(st_.backing_dir, dir.data(), std::min(dir.size(), sizeof st_.backing_dir - 1));
  store_state();
}

std::string Region::backing_dir() const { return std::string(st_.backing_dir, strnlen(st_.backing_dir, sizeof st_.backing_dir)); }

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
  in.version = h.version;
  in.block_size = h.block_size;
  in.nblocks = h.nblocks;
  in.nfiles = h.nfiles;
  bool synced = false;
  std::uint64_t synced_seq = 0;
  if (auto st = read_state(h)) {
    synced = st->synced == 1;
    synced_seq = st->synced_seq;
    in.generation = st->generation;
    in.clean = st->clean == 1;
    in.owner_pid = st->owner_pid;
    in.backing_dir.assign(st->backing_dir, strnlen(st->backing_dir, sizeof st->backing_dir));
  } else {
    in.corrupt.push_back({0, "(header)", 0, "both copies of the header state fail their checksum"});
  }
  const auto* files = reinterpret_cast<const L::FileEntry*>(base + h.files_off);
  const auto* entries = reinterpret_cast<const L::Entry*>(base + h.registry_off);
  // A file entry is trusted only if its word, size and path pass their checks.
  std::vector<int> file_row(h.nfiles, -1);
  std::vector<bool> file_bad(h.nfiles, false);
  for (std::uint32_t f = 0; f < h.nfiles; ++f) {
    const L::FileEntry& fe = files[f];
    const std::uint64_t w = fe.word.load();
    const L::FileState fs = L::file_state(w);
    const std::uint64_t gen = L::file_gen(w);
    const bool ok = L::check_ok(w) && (fs == L::kFileFree || ((fs == L::kFileUsed || fs == L::kFileUnlinking) &&
                                                               L::size_ok(fe.size_word.load(), gen) && fe.path_len < L::kPathMax &&
                                                               fe.path_check == path_checksum({fe.path, fe.path_len}, gen)));
    if (!ok) {
      file_bad[f] = true;
      in.corrupt.push_back({~0u, "(file table entry " + std::to_string(f) + ")", 0, "file entry fails its checks"});
      continue;
    }
    if (fs != L::kFileUsed) continue;
    file_row[f] = static_cast<int>(in.files.size());
    in.files.push_back({std::string(fe.path, fe.path_len), L::size_of(fe.size_word.load()), 0, 0});
  }
  for (std::uint32_t s = 0; s < h.nblocks; ++s) {
    const L::Entry& e = entries[s];
    const std::uint64_t w = e.word.load();
    if (!L::word_ok(w)) {
      in.corrupt.push_back({s, "?", e.block, "state word fails its check"});
      continue;
    }
    const L::State state = L::word_state(w);
    const bool known = e.file < h.nfiles && file_row[e.file] >= 0 &&
                       static_cast<std::uint32_t>(L::file_gen(files[e.file].word.load())) == e.file_gen;
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
    if (!ok && synced && L::word_seq(w) >= synced_seq) ++in.torn_unsynced;  // see recover(): debris, not damage
    else if (!ok) in.corrupt.push_back({s, name, e.block, "checksum mismatch"});
    else if (e.file < h.nfiles && file_bad[e.file]) in.corrupt.push_back({s, "?", e.block, "its file entry is damaged"});
    if (known) {
      auto& row = in.files[static_cast<std::size_t>(file_row[e.file])];
      state == L::kDirty ? ++row.dirty : ++row.clean;
    }
  }
  munmap(m, static_cast<std::size_t>(st.st_size));
  return in;
}

bool Region::retire(std::uint32_t slot) {
  if (dur_ != Durability::synced) {
    set_state(slot, L::kFree);
    return true;
  }
  retired_.push_back(slot);
  return false;
}

std::vector<std::uint32_t> Region::take_reusable() { return std::exchange(reusable_, {}); }

int Region::flushes_pending() const { return !retired_.empty() ? 2 : !freeing_.empty() ? 1 : 0; }

Result<void> Region::msync_pages(std::uint64_t first, std::uint64_t count) const {
  const std::uint64_t pg = page_size();
  const std::uint64_t off = first * pg, len = std::min(count * pg, size_ - off);
  if (msync(ro_ + off, len, MS_SYNC) != 0) return fail(Errc::limit, "rio: " + sys("msync"));
  return {};
}

Result<void> Region::flush() {
  FlushTicket t = begin_flush();
  Result<void> r = sync_pages(t);
  end_flush(t, r.has_value());
  WARD_TRY(std::move(r));
  return sync_header();
}

Region::FlushTicket Region::begin_flush() {
  FlushTicket t;
  if (dur_ != Durability::synced) return t;
  t.active = true;
  // The flags go down now, not after the msync: a store from here on puts its page on the list
  // again, whether or not the msync below happens to catch it.
  t.pages = std::exchange(dirty_pages_, {});
  for (std::uint64_t p : t.pages) page_dirty_[p] = 0;
  std::sort(t.pages.begin(), t.pages.end());
  t.seq = seq_;
  t.retired = std::exchange(retired_, {});
  t.freeing = std::exchange(freeing_, {});
  if (flush_observer_) flush_observer_(false, t.pages);
  return t;
}

Result<void> Region::sync_pages(const FlushTicket& t) const {
  // Only the pages stored to before begin_flush, in runs.
  for (std::size_t i = 0; i < t.pages.size();) {
    std::size_t j = i + 1;
    while (j < t.pages.size() && t.pages[j] == t.pages[j - 1] + 1) ++j;
    WARD_TRY(msync_pages(t.pages[i], j - i));
    i = j;
  }
  return {};
}

void Region::end_flush(FlushTicket& t, bool synced) {
  if (!t.active) return;
  t.active = false;
  if (!synced) {  // nothing is known to be on disk: everything taken waits for the next flush
    for (std::uint64_t p : t.pages)
      if (!page_dirty_[p]) {
        page_dirty_[p] = 1;
        dirty_pages_.push_back(p);
      }
    retired_.insert(retired_.end(), t.retired.begin(), t.retired.end());
    freeing_.insert(freeing_.end(), t.freeing.begin(), t.freeing.end());
    return;
  }
  if (flush_observer_) flush_observer_(true, {});
  // Every version below t.seq is on disk: recovery counts a version at or above it that fails its
  // checksum as debris of a write the power cut tore (never acknowledged: its predecessor is
  // still intact), not as damage. The header page is msynced by sync_header (and stays on the
  // list for the next flush).
  st_.synced_seq = std::max(st_.synced_seq, t.seq);
  store_state();
  // The taken stages move on: the successors of the taken retired slots are durable, so they may
  // be marked free; the taken freeing slots' free marks are durable, so they may be reused.
  reusable_.insert(reusable_.end(), t.freeing.begin(), t.freeing.end());
  for (std::uint32_t s : t.retired) set_state(s, L::kFree);
  freeing_.insert(freeing_.end(), t.retired.begin(), t.retired.end());
}

Result<void> Region::sync_header() const {
  if (dur_ != Durability::synced) return {};
  return msync_pages(0, (L::kHeaderSize + page_size() - 1) / page_size());
}

Result<void> Region::sync_all() {
  if (dur_ != Durability::synced) return {};
  if (msync(ro_, size_, MS_SYNC) != 0) return fail(Errc::limit, "rio: " + sys("msync"));
  for (std::uint64_t p : dirty_pages_) page_dirty_[p] = 0;
  dirty_pages_.clear();
  return flush();  // records synced_seq
}

}  // namespace ward::rio
