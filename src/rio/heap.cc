#include "ward/rio/heap.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "core/unique_fd.h"

namespace ward::rio {
namespace {

// ---- the file format (docs/rio.md, "Rio Vista") ---------------------------------------------
// [header page][undo log: log_size bytes][heap: Meta, then blocks up to Meta::bump]
constexpr std::uint64_t kMagic = 0x5041454849524457ull;  // "WDRIHEAP"
constexpr std::uint32_t kVersion = 1;
constexpr std::uint64_t kHeaderPage = 4096;

struct FileHeader {
  std::uint64_t magic;
  std::uint32_t version, header_size;
  std::uint64_t size, log_off, log_size, heap_off;
  std::uint64_t geometry_checksum;  // XXH3 of everything above
  // The one word a commit stores: the current transaction's id << 24 | its undo records. No
  // records means no transaction to roll back.
  alignas(64) std::atomic<std::uint64_t> log_word;
  std::atomic<std::uint32_t> owner_pid;
};
static_assert(sizeof(FileHeader) <= kHeaderPage);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

constexpr unsigned kCountBits = 24;
constexpr std::uint64_t kMaxRecords = (1ull << kCountBits) - 1;
std::uint64_t make_word(std::uint64_t txid, std::uint64_t records) { return txid << kCountBits | records; }

// One undo record in the log: this header, then `len` old bytes, padded to 8.
struct Record {
  std::uint64_t off;
  std::uint32_t len, index;
  std::uint64_t txid;
  std::uint64_t check;  // XXH3 of the fields above: recovery never writes where a damaged record says
};
static_assert(sizeof(Record) == 32);
std::uint64_t record_check(const Record& r) { return XXH3_64bits(&r, offsetof(Record, check)); }
std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

// The allocator: power-of-two size classes from 32 bytes, one free list each, and a bump
// pointer. No coalescing. All of it is heap data, changed under the undo log like any other.
constexpr unsigned kClasses = 40;
struct Meta {
  Offset root;
  Offset bump;  // the first byte never allocated
  Offset free_head[kClasses];  // block offsets
};
constexpr std::uint32_t kLive = 0x4556494cu, kFree = 0x45455246u;  // "LIVE", "FREE"
struct Block {  // precedes every allocation; a free block's next link is the payload's first word
  std::uint32_t state, cls;
  std::uint64_t freed_tx;  // the transaction that freed it: its bytes are logged before reuse in it
};
constexpr std::uint64_t kBlockHeader = sizeof(Block);
static_assert(kBlockHeader == 16);
std::uint64_t class_bytes(unsigned c) { return 32ull << c; }

std::string sys(const std::string& what) { return what + ": " + std::strerror(errno); }

std::uint64_t geometry_checksum(const FileHeader& h) { return XXH3_64bits(&h, offsetof(FileHeader, geometry_checksum)); }

Result<void> validate(const FileHeader& h, const std::filesystem::path& path, std::uint64_t file_size) {
  const std::string p = path.string();
  if (h.magic != kMagic) return fail(Errc::load_failed, "rio heap: " + p + " is not a ward heap (bad magic)");
  if (h.version != kVersion)
    return fail(Errc::load_failed, "rio heap: " + p + " has version " + std::to_string(h.version) + ", this ward reads version " +
                                       std::to_string(kVersion));
  if (h.geometry_checksum != geometry_checksum(h)) return fail(Errc::load_failed, "rio heap: " + p + ": header is damaged (checksum)");
  if (h.size != file_size)
    return fail(Errc::load_failed, "rio heap: " + p + " is truncated or extended: its header says " + std::to_string(h.size) +
                                       " bytes, the file has " + std::to_string(file_size));
  if (h.header_size != kHeaderPage || h.log_off != kHeaderPage || h.log_size == 0 || h.heap_off != h.log_off + h.log_size ||
      h.heap_off + align_up(sizeof(Meta), 64) + 64 > h.size)
    return fail(Errc::load_failed, "rio heap: " + p + ": geometry is inconsistent");
  return {};
}

// Builds a complete heap under a temporary name and links it into place, so `path` never names a
// half-made heap. Returns the open, locked descriptor, or -1 if another process got there first.
Result<int> create_file(const HeapOptions& opt, std::uint64_t size, std::uint64_t log_size) {
  const auto tmp = opt.path.parent_path() / ("." + opt.path.filename().string() + ".new-" + std::to_string(getpid()));
  UniqueFd f(::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (f.get() < 0) return fail(Errc::load_failed, "rio heap: " + sys("create " + tmp.string()));
  struct Unlink {
    std::filesystem::path p;
    ~Unlink() { ::unlink(p.c_str()); }
  } unlink_tmp{tmp};
  if (flock(f.get(), LOCK_EX | LOCK_NB) != 0) return fail(Errc::load_failed, "rio heap: " + sys("flock"));
  if (const int e = posix_fallocate(f.get(), 0, static_cast<off_t>(size)); e != 0)
    return fail(e == ENOSPC ? Errc::limit : Errc::load_failed,
                "rio heap: cannot reserve " + std::to_string(size) + " bytes for " + opt.path.string() + ": " + std::strerror(e));
  FileHeader h{};
  h.magic = kMagic;
  h.version = kVersion;
  h.header_size = kHeaderPage;
  h.size = size;
  h.log_off = kHeaderPage;
  h.log_size = log_size;
  h.heap_off = kHeaderPage + log_size;
  h.geometry_checksum = geometry_checksum(h);
  Meta m{};
  m.bump = h.heap_off + align_up(sizeof(Meta), 64);
  if (pwrite(f.get(), &m, sizeof m, static_cast<off_t>(h.heap_off)) != static_cast<ssize_t>(sizeof m) ||
      pwrite(f.get(), &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h))
    return fail(Errc::load_failed, "rio heap: " + sys("write " + tmp.string()));
  if (::link(tmp.c_str(), opt.path.c_str()) != 0) {
    if (errno == EEXIST) return -1;
    return fail(Errc::load_failed, "rio heap: " + sys("link " + opt.path.string()));
  }
  return f.release();
}

}  // namespace

// ---- open and recovery ------------------------------------------------------------------------

Result<std::unique_ptr<Heap>> Heap::open(const HeapOptions& opt, HeapRecovery* report) {
  HeapRecovery local;
  HeapRecovery& rep = report ? *report : local;
  rep = {};
  if (opt.path.empty()) return fail(Errc::misuse, "rio heap: no path given");
  if (opt.protection != Protection::alias && opt.protection != Protection::off)
    return fail(Errc::misuse, "rio heap: protection must be alias or off, not " + std::string(to_string(opt.protection)));
  std::unique_ptr<Heap> h(new Heap());
  h->path_ = opt.path;
  const std::uint64_t pg = static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  UniqueFd f;
  for (int attempt = 0; attempt < 2 && f.get() < 0; ++attempt) {
    f = UniqueFd(::open(opt.path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
    if (f.get() >= 0) break;
    if (errno == ELOOP) return fail(Errc::misuse, "rio heap: " + opt.path.string() + " is a symbolic link: refused");
    if (errno != ENOENT || !opt.create) return fail(Errc::load_failed, "rio heap: " + sys(opt.path.string()));
    const std::uint64_t log_size = align_up(std::max<std::uint64_t>(opt.log_size, pg), pg);
    const std::uint64_t size = align_up(opt.size, pg);
    if (size < kHeaderPage + log_size + pg)
      return fail(Errc::misuse, "rio heap: " + std::to_string(opt.size) + " bytes cannot hold a " + std::to_string(log_size) +
                                    "-byte undo log and a heap (need at least " + std::to_string(kHeaderPage + log_size + pg) + ")");
    f = UniqueFd(WARD_TRY(create_file(opt, size, log_size)));  // -1: created meanwhile by another process; open that
    rep.created = f.get() >= 0;
  }
  if (f.get() < 0) return fail(Errc::load_failed, "rio heap: " + opt.path.string() + " keeps appearing and vanishing");
  if (!rep.created && flock(f.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return fail(Errc::load_failed, "rio heap: " + sys("flock"));
    std::uint32_t pid = 0;
    (void)!pread(f.get(), &pid, sizeof pid, offsetof(FileHeader, owner_pid));
    return fail(Errc::misuse, "rio heap: " + opt.path.string() + " is in use by another process (pid " + std::to_string(pid) + ")");
  }
  struct stat st {};
  if (fstat(f.get(), &st) != 0) return fail(Errc::load_failed, "rio heap: " + sys("fstat"));
  if (!S_ISREG(st.st_mode)) return fail(Errc::load_failed, "rio heap: " + opt.path.string() + " is not a regular file");
  if (st.st_uid != geteuid())
    return fail(Errc::misuse, "rio heap: " + opt.path.string() + " belongs to uid " + std::to_string(st.st_uid) + ", not to this user: refused");
  if ((st.st_mode & 077) != 0)
    return fail(Errc::misuse, "rio heap: " + opt.path.string() + " is open to group or others (mode 0" +
                                  std::to_string((st.st_mode >> 6 & 7) * 100 + (st.st_mode >> 3 & 7) * 10 + (st.st_mode & 7)) +
                                  "): refused (chmod 600 it if that is intended to be yours)");
  const auto file_size = static_cast<std::uint64_t>(st.st_size);
  if (file_size < sizeof(FileHeader))
    return fail(Errc::load_failed, "rio heap: " + opt.path.string() + " is too short to be a heap (" + std::to_string(file_size) + " bytes)");
  FileHeader hdr;
  if (pread(f.get(), &hdr, sizeof hdr, 0) != static_cast<ssize_t>(sizeof hdr)) return fail(Errc::load_failed, "rio heap: " + sys("read header"));
  WARD_TRY(validate(hdr, opt.path, file_size));
  const Views v = WARD_TRY(map_views(f.get(), file_size, opt.protection));
  h->fd_ = f.release();
  h->ro_ = v.ro;
  h->rw_ = v.rw;
  h->size_ = file_size;
  h->log_off_ = hdr.log_off;
  h->log_size_ = hdr.log_size;
  h->heap_off_ = hdr.heap_off;
  reinterpret_cast<FileHeader*>(h->rw_)->owner_pid.store(static_cast<std::uint32_t>(getpid()));
  WARD_TRY(h->recover(rep));
  const auto& m = *h->at<Meta>(h->heap_off_);
  const Offset first = h->heap_off_ + align_up(sizeof(Meta), 64);
  if (m.bump < first || m.bump > h->size_ || m.bump % 16 != 0 || (m.root != 0 && !h->contains(m.root, 1)))
    return fail(Errc::load_failed, "rio heap: " + opt.path.string() + ": allocator state is damaged (root or bump out of range)");
  return h;
}

Result<void> Heap::recover(HeapRecovery& rep) {
  const auto& hdr = *at<FileHeader>(0);
  const std::uint64_t word = hdr.log_word.load(std::memory_order_acquire);
  const std::uint64_t txid = word >> kCountBits, count = word & kMaxRecords;
  if (count == 0) return {};
  // Check every record before restoring any: a damaged log is reported and left alone.
  std::vector<std::uint64_t> pos;
  std::uint64_t p = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    Record r;
    if (p + sizeof r > log_size_) return fail(Errc::load_failed, "rio heap: undo log damaged: record " + std::to_string(i) + " lies past the log");
    std::memcpy(&r, ro_ + log_off_ + p, sizeof r);
    const bool ok = r.check == record_check(r) && r.txid == txid && r.index == i && r.off >= heap_off_ && r.len <= size_ - r.off &&
                    p + sizeof r + align_up(r.len, 8) <= log_size_;
    if (!ok)
      return fail(Errc::load_failed, "rio heap: " + path_.string() + ": undo log record " + std::to_string(i) + " of " + std::to_string(count) +
                                         " is damaged; the heap was left as it is (not rolled back)");
    pos.push_back(p);
    p += sizeof r + align_up(r.len, 8);
    rep.bytes += r.len;
  }
  roll_back(txid, pos);
  rep.rolled_back = true;
  rep.ranges = static_cast<std::uint32_t>(count);
  return {};
}

void Heap::roll_back(std::uint64_t txid, std::span<const std::uint64_t> record_pos) {
  // Newest first, so a range declared twice ends with its oldest bytes. Repeating this after a
  // crash midway restores the same bytes again: recovery can itself be killed and rerun.
  for (auto it = record_pos.rbegin(); it != record_pos.rend(); ++it) {
    const std::byte* rec = ro_ + log_off_ + *it;
    Record r;
    std::memcpy(&r, rec, sizeof r);
    std::memcpy(rw_ + r.off, rec + sizeof r, r.len);
  }
  std::atomic_signal_fence(std::memory_order_seq_cst);
  reinterpret_cast<FileHeader*>(rw_)->log_word.store(make_word(txid + 1, 0), std::memory_order_release);
}

Heap::~Heap() {
  if (tx_open_) roll_back(tx_id_, records_);
  unmap_views({ro_, rw_}, size_);
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

// ---- reading ----------------------------------------------------------------------------------

Offset Heap::root() const { return at<Meta>(heap_off_)->root; }

bool Heap::contains(Offset off, std::uint64_t n) const { return off >= heap_off_ && off <= size_ && n <= size_ - off; }

Offset Heap::offset_of(const void* p) const {
  const auto* b = static_cast<const std::byte*>(p);
  if (b >= ro_ && b < ro_ + size_) return static_cast<Offset>(b - ro_);
  if (b >= rw_ && b < rw_ + size_) return static_cast<Offset>(b - rw_);
  return 0;
}

std::uint64_t Heap::transactions() const { return at<FileHeader>(0)->log_word.load(std::memory_order_acquire) >> kCountBits; }

namespace {
// The block header at `b` if it is one in `state` inside [first, bump).
const Block* block_at(const Heap& h, Offset b, Offset first, Offset bump, std::uint32_t state) {
  if (b < first || b % 16 != 0 || b + kBlockHeader > bump) return nullptr;
  const Block* blk = h.at<Block>(b);
  if (blk->state != state || blk->cls >= kClasses || class_bytes(blk->cls) > bump - b) return nullptr;
  return blk;
}
}  // namespace

Result<std::size_t> Heap::allocation_size(Offset off) const {
  const Meta& m = *at<Meta>(heap_off_);
  const Block* blk = off >= kBlockHeader ? block_at(*this, off - kBlockHeader, heap_off_ + align_up(sizeof(Meta), 64), m.bump, kLive) : nullptr;
  if (!blk) return fail(Errc::misuse, "rio heap: offset " + std::to_string(off) + " is not a live allocation");
  return class_bytes(blk->cls) - kBlockHeader;
}

Result<HeapStats> Heap::check() const {
  const Meta& m = *at<Meta>(heap_off_);
  const Offset first = heap_off_ + align_up(sizeof(Meta), 64);
  HeapStats s;
  for (Offset b = first; b < m.bump;) {
    const Block* blk = block_at(*this, b, first, m.bump, kLive);
    if (!blk) blk = block_at(*this, b, first, m.bump, kFree);
    if (!blk) return fail(Errc::load_failed, "rio heap: damaged block header at offset " + std::to_string(b));
    (blk->state == kLive ? s.live_blocks : s.free_blocks) += 1;
    (blk->state == kLive ? s.live_bytes : s.free_bytes) += class_bytes(blk->cls);
    b += class_bytes(blk->cls);
  }
  std::uint64_t listed = 0;
  for (unsigned c = 0; c < kClasses; ++c)
    for (Offset b = m.free_head[c]; b != 0; b = *at<Offset>(b + kBlockHeader)) {
      const Block* blk = block_at(*this, b, first, m.bump, kFree);
      if (!blk || blk->cls != c || ++listed > s.free_blocks)
        return fail(Errc::load_failed, "rio heap: free list " + std::to_string(c) + " is damaged at offset " + std::to_string(b));
    }
  if (listed != s.free_blocks)
    return fail(Errc::load_failed, "rio heap: " + std::to_string(s.free_blocks - listed) + " free blocks are on no free list (leaked)");
  s.unused_bytes = size_ - m.bump;
  return s;
}

// ---- transactions -----------------------------------------------------------------------------

Result<Transaction> Heap::begin() {
  if (tx_open_) return fail(Errc::misuse, "rio heap: a transaction is already open (one at a time)");
  tx_open_ = true;
  tx_id_ = transactions();
  log_used_ = 0;
  records_.clear();
  return Transaction(this);
}

Result<std::byte*> Heap::log(Offset off, std::size_t n) {
  const std::uint64_t need = sizeof(Record) + align_up(n, 8);
  if (need > log_size_ - log_used_ || records_.size() >= kMaxRecords || n > 0xFFFFFFFFu)
    return fail(Errc::limit, "rio heap: " + path_.string() + ": undo log full (" + std::to_string(log_size_) +
                                 " bytes; HeapOptions::log_size): the transaction can only be aborted");
  std::byte* dst = rw_ + log_off_ + log_used_;
  Record r{off, static_cast<std::uint32_t>(n), static_cast<std::uint32_t>(records_.size()), tx_id_, 0};
  r.check = record_check(r);
  std::memcpy(dst, &r, sizeof r);
  std::memcpy(dst + sizeof r, ro_ + off, n);
  records_.push_back(log_used_);
  log_used_ += need;
  // The record is complete before the word counts it, and counted before the caller's first
  // store into the range (a process crash stops the program between two instructions: program
  // order is what must hold, so compiler fences suffice).
  std::atomic_signal_fence(std::memory_order_seq_cst);
  reinterpret_cast<FileHeader*>(rw_)->log_word.store(make_word(tx_id_, records_.size()), std::memory_order_release);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  return rw_ + off;
}


Result<std::byte*> Transaction::declare(const void* p, std::size_t n) {
  if (!heap_) return fail(Errc::misuse, "rio heap: declare on a finished transaction");
  Heap& h = *heap_;
  const Offset off = h.offset_of(p);
  if (off < h.heap_off_ || n > h.size_ - off)
    return fail(Errc::misuse, "rio heap: declared range is not inside the heap's object area");
  return h.log(off, n);
}

Result<Allocation> Transaction::alloc(std::size_t n) {
  if (!heap_) return fail(Errc::misuse, "rio heap: alloc on a finished transaction");
  Heap& h = *heap_;
  unsigned c = 0;
  while (c < kClasses && class_bytes(c) < n + kBlockHeader) ++c;
  if (c == kClasses || n > h.size_) return fail(Errc::limit, "rio heap: allocation of " + std::to_string(n) + " bytes is too large");
  const Meta& m = *h.at<Meta>(h.heap_off_);
  const Offset first = h.heap_off_ + align_up(sizeof(Meta), 64);
  const Offset meta_off = h.heap_off_;
  Offset b = m.free_head[c];
  if (b != 0) {
    const Block* blk = block_at(h, b, first, m.bump, kFree);
    if (!blk || blk->cls != c) return fail(Errc::load_failed, "rio heap: free list " + std::to_string(c) + " is damaged");
    const Offset next = *h.at<Offset>(b + kBlockHeader);
    auto* head = reinterpret_cast<Offset*>(WARD_TRY(h.log(meta_off + offsetof(Meta, free_head) + c * sizeof(Offset), sizeof(Offset))));
    // The header and the free-list link: an abort puts the block back on its list as it was.
    // Freed by this very transaction: all its bytes, which an abort must give back to their owner.
    const bool mine = blk->freed_tx == h.tx_id_;
    auto* w = reinterpret_cast<Block*>(WARD_TRY(h.log(b, mine ? class_bytes(c) : kBlockHeader + sizeof(Offset))));
    *head = next;
    w->state = kLive;
  } else {
    if (class_bytes(c) > h.size_ - m.bump)
      return fail(Errc::limit, "rio heap: " + h.path_.string() + " is full (" + std::to_string(n) + " bytes asked)");
    b = m.bump;
    auto* bump = reinterpret_cast<Offset*>(WARD_TRY(h.log(meta_off + offsetof(Meta, bump), sizeof(Offset))));
    *bump = b + class_bytes(c);
    // Past the old bump: an abort makes it unallocated again, so nothing here needs logging.
    auto* w = reinterpret_cast<Block*>(h.rw_ + b);
    w->cls = c;
    w->freed_tx = 0;
    w->state = kLive;
  }
  return Allocation{b + kBlockHeader, h.rw_ + b + kBlockHeader, class_bytes(c) - kBlockHeader};
}

Result<void> Transaction::free(Offset off) {
  if (!heap_) return fail(Errc::misuse, "rio heap: free on a finished transaction");
  Heap& h = *heap_;
  if (auto size = h.allocation_size(off); !size) return std::unexpected(std::move(size.error()));  // not a live allocation
  const Offset b = off - kBlockHeader;
  const unsigned c = h.at<Block>(b)->cls;
  auto* w = reinterpret_cast<Block*>(WARD_TRY(h.log(b, kBlockHeader + sizeof(Offset))));
  auto* head = reinterpret_cast<Offset*>(WARD_TRY(h.log(h.heap_off_ + offsetof(Meta, free_head) + c * sizeof(Offset), sizeof(Offset))));
  w->state = kFree;
  w->freed_tx = h.tx_id_;
  *reinterpret_cast<Offset*>(reinterpret_cast<std::byte*>(w) + kBlockHeader) = *head;
  *head = b;
  return {};
}

Result<void> Transaction::set_root(Offset off) {
  if (!heap_) return fail(Errc::misuse, "rio heap: set_root on a finished transaction");
  Heap& h = *heap_;
  if (off != 0 && !h.contains(off, 1)) return fail(Errc::misuse, "rio heap: root " + std::to_string(off) + " is not inside the heap");
  auto* root = reinterpret_cast<Offset*>(WARD_TRY(h.log(h.heap_off_ + offsetof(Meta, root), sizeof(Offset))));
  *root = off;
  return {};
}

Result<void> Transaction::commit() {
  if (!heap_) return fail(Errc::misuse, "rio heap: commit on a finished transaction");
  Heap& h = *heap_;
  // Every store into the declared ranges precedes the one store that makes them permanent.
  std::atomic_signal_fence(std::memory_order_seq_cst);
  reinterpret_cast<FileHeader*>(h.rw_)->log_word.store(make_word(h.tx_id_ + 1, 0), std::memory_order_release);
  h.tx_open_ = false;
  heap_ = nullptr;
  return {};
}

void Transaction::abort() {
  if (!heap_) return;
  heap_->roll_back(heap_->tx_id_, heap_->records_);
  heap_->tx_open_ = false;
  heap_ = nullptr;
}

}  // namespace ward::rio
