// rio::Heap: objects in a crash-surviving region, changed only by transactions — Rio Vista
// (Lowell & Chen, SOSP 1997) in user space. A transaction declares each range before changing
// it; declaring copies the range's old bytes into an undo log inside the region. commit() is one
// atomic 8-byte store that invalidates the log; abort() (or the destructor of a transaction not
// committed, or the next open after a crash) copies the old bytes back, newest first.
//
//   auto heap = WARD_TRY(rio::Heap::open({.path = dir / "app.heap"}));
//   auto tx = WARD_TRY(heap->begin());
//   auto a = WARD_TRY(tx.alloc(sizeof(Account)));        // fresh memory: writable, nothing logged
//   Account* root = WARD_TRY(tx.declare(heap->at<Account>(heap->root())));  // logs old bytes
//   root->balance -= 10; ...
//   WARD_TRY(tx.set_root(a.off));
//   WARD_TRY(tx.commit());
//
// What a crash at any instant leaves (SIGKILL included, during a transaction, its commit, its
// abort, or the recovery at open): after the next Heap::open, every transaction whose commit()
// returned is wholly present and every other one wholly absent. A transaction whose commit() was
// executing is one or the other. Allocations and frees are part of the transaction (the
// allocator's state lives in the heap and changes under the same undo log), so a rolled-back
// transaction leaks nothing and frees nothing.
//
// What survives what: the heap never msyncs. Its writes are stores into a shared mapping, so they
// survive a crash of the *process* wherever the file lives — tmpfs (/dev/shm, the intended
// place: no disk I/O ever) or a disk file (the page cache holds them). They do not survive a
// kernel crash or a power loss on any placement: the kernel writes pages back in any order, so a
// disk image can mix pages from before and after a commit. (A power-loss mode would msync each
// undo record before its range changes and the data before the commit store; not built.)
//
// Protection (HeapOptions::protection): with Protection::alias (the default) the program's view
// of the heap — every pointer at() returns — is read-only, and declare()/alloc() return pointers
// into a second, hidden writable mapping of the same memory. So a store to an undeclared object
// through the program's view faults (SIGSEGV: fail-stop, the heap stays consistent). Not caught:
// a store through a writable pointer *beyond* the range declared for it — it lands and is not
// undone on abort or crash. Protection::off maps the program's view writable (for comparison);
// mprotect and pkeys are refused (misuse).
//
// Ownership: one process owns a heap file at a time (an exclusive flock held while open); a
// second opener gets Errc::misuse "in use". The file must belong to the caller and be closed to
// group and others (refused otherwise). A new heap is built under a temporary name with O_EXCL,
// its space reserved (posix_fallocate: ENOSPC is an error, never a later SIGBUS), and linked into
// place complete, so a path never names a half-made heap.
//
// Threads: not synchronized. One thread at a time uses a Heap and its Transaction; one
// transaction is open at a time (begin() fails while one is). No isolation: reads through at()
// see the open transaction's uncommitted stores.
//
// Lifetime: pointers from at(), declare() and alloc() are valid while the Heap lives (the mapping
// moves between opens: store Offsets in the heap, never pointers). A Transaction must not outlive
// its Heap; destroying a Heap with a transaction open rolls it back.
//
// Errors: misuse (bad options, in use, wrong owner or mode, a pointer outside the heap, a
// transaction already finished), limit (undo log full, heap full, no space for the file),
// load_failed (not a heap, wrong version, truncated or extended, damaged header, undo log or
// allocator — reported, never acted on).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "ward/core/error.h"
#include "ward/rio/region.h"

namespace ward::rio {

// A position in the heap file; 0 is null. Stable across opens, unlike pointers.
using Offset = std::uint64_t;

struct HeapOptions {
  std::filesystem::path path;
  std::uint64_t size = 16ull << 20;     // the whole file, when creating (rounded up to pages)
  std::uint64_t log_size = 1ull << 20;  // undo log bytes, when creating: the most one transaction may declare
  Protection protection = Protection::alias;  // alias or off
  bool create = true;                   // create the heap if the file does not exist
};

// What the open found and did.
struct HeapRecovery {
  bool rolled_back = false;     // an undo log was left valid by a crash and was applied
  std::uint32_t ranges = 0;     // its records
  std::uint64_t bytes = 0;      // bytes restored
  bool created = false;
};

// The allocator's state, walked and checked (Heap::check).
struct HeapStats {
  std::uint64_t live_blocks = 0, live_bytes = 0, free_blocks = 0, free_bytes = 0, unused_bytes = 0;
};

// A block handed out by Transaction::alloc: `data` is writable (no need to declare it) for
// `size` bytes (at least what was asked).
struct Allocation {
  Offset off = 0;
  std::byte* data = nullptr;
  std::size_t size = 0;
};

class Transaction;

class Heap {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Heap>> open(const HeapOptions& opt, HeapRecovery* report = nullptr);
  ~Heap();
  Heap(const Heap&) = delete;
  Heap& operator=(const Heap&) = delete;

  [[nodiscard]] Result<Transaction> begin();

  // The root object set by Transaction::set_root (0 until then).
  [[nodiscard]] Offset root() const;
  // The program's (read-only) view of `off`. Unchecked: use contains() on offsets you did not
  // write yourself.
  template <class T = std::byte>
  [[nodiscard]] const T* at(Offset off) const {
    return reinterpret_cast<const T*>(ro_ + off);
  }
  [[nodiscard]] bool contains(Offset off, std::uint64_t n) const;
  // The offset of a pointer into either view; 0 if it is not in the heap.
  [[nodiscard]] Offset offset_of(const void* p) const;
  // The usable size of a live allocation; misuse if `off` is not one.
  [[nodiscard]] Result<std::size_t> allocation_size(Offset off) const;
  // Walks every block and every free list; load_failed on any inconsistency.
  [[nodiscard]] Result<HeapStats> check() const;
  // Transactions begun since the heap was created (committed or not).
  [[nodiscard]] std::uint64_t transactions() const;
  [[nodiscard]] std::span<const std::byte> mapping() const { return {ro_, size_}; }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  friend class Transaction;
  Heap() = default;
  // Copies the old bytes back, newest record first, then invalidates the log.
  void roll_back(std::uint64_t txid, std::span<const std::uint64_t> record_pos);
  Result<void> recover(HeapRecovery& report);
  // Appends an undo record of [off, off+n) (checked by the caller) to the open transaction's log,
  // publishes it, and returns the writable view of the range.
  Result<std::byte*> log(Offset off, std::size_t n);

  std::filesystem::path path_;
  int fd_ = -1;
  std::byte* ro_ = nullptr;  // the program's view
  std::byte* rw_ = nullptr;  // the transactions' view
  std::uint64_t size_ = 0, log_off_ = 0, log_size_ = 0, heap_off_ = 0;
  bool tx_open_ = false;
  std::uint64_t tx_id_ = 0;
  std::uint64_t log_used_ = 0;
  std::vector<std::uint64_t> records_;  // positions of the open transaction's records (reused)
};

class Transaction {
 public:
  Transaction(Transaction&& o) noexcept : heap_(o.heap_) { o.heap_ = nullptr; }
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  ~Transaction() { abort(); }

  // Logs [p, p+n) (a pointer into either view, inside the heap) and returns a writable pointer to
  // it. Errors: misuse (outside the heap, transaction finished), limit (undo log full: the
  // transaction stays open and can still be aborted).
  [[nodiscard]] Result<std::byte*> declare(const void* p, std::size_t n);
  template <class T>
  [[nodiscard]] Result<T*> declare(const T* p) {
    auto r = declare(static_cast<const void*>(p), sizeof(T));
    if (!r) return std::unexpected(std::move(r.error()));
    return reinterpret_cast<T*>(*r);
  }
  // A block of at least `n` bytes (16-byte aligned); its contents are unspecified.
  [[nodiscard]] Result<Allocation> alloc(std::size_t n);
  // Frees a live allocation (misuse if `off` is not one). Its bytes are not reused by this
  // transaction without being logged first, so an abort gets them back intact.
  [[nodiscard]] Result<void> free(Offset off);
  [[nodiscard]] Result<void> set_root(Offset off);
  // One atomic store: from here on the transaction survives any crash of the process.
  [[nodiscard]] Result<void> commit();
  // Restores every declared range; no-op once finished.
  void abort();
  [[nodiscard]] bool open() const { return heap_ != nullptr; }

 private:
  friend class Heap;
  explicit Transaction(Heap* h) : heap_(h) {}
  Heap* heap_;
};

}  // namespace ward::rio
