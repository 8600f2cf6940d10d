// The FUSE relay's --rio (docs/fuse.md, "Acknowledged writes in a Rio heap"): every WRITE the
// kernel was told succeeded is kept, in ward's ids, in a rio::Heap under /dev/shm until a FLUSH,
// FSYNC or RELEASE of its handle succeeds, and written again through the reopened handle after a
// restart. relay_impl.h has the class's contract.
#include <unistd.h>

#include <system_error>

#include "fuse/relay_impl.h"
#include "rio/private_path.h"

namespace ward::fuse::detail {

Result<void> Relay::open_rio() {
  std::filesystem::path base = "/dev/shm/ward-" + std::to_string(::geteuid());
  WARD_TRY(rio::ensure_private_dir(base));
  rio_dir_ = WARD_TRY(rio::make_private_dir(base, "fuse-rio"));
  rio::HeapOptions ho;
  ho.path = rio_dir_ / "writes.heap";
  ho.size = o_.rio_size + (4u << 20);  // room for the allocator's own blocks
  rio_heap_ = WARD_TRY(rio::Heap::open(ho));
  return {};
}

void Relay::close_rio() {
  if (!rio_heap_) return;
  rio_heap_.reset();  // the kept writes are ward's alone: they go with it
  std::error_code ec;
  std::filesystem::remove_all(rio_dir_, ec);
}

// A reply that succeeded: a WRITE is kept; a FLUSH, FSYNC or RELEASE frees what its handle kept.
void Relay::rio_replied(const InFlight& r) {
  if (!o_.rio || !r.ids.has_fh) return;
  if (r.opcode == FUSE_WRITE) keep_write(r);
  if (r.opcode == FUSE_FLUSH || r.opcode == FUSE_FSYNC || r.opcode == FUSE_RELEASE) made_durable(r.ids.fh);
}

// A WRITE the kernel now believes done: its request (ward's ids) goes into the heap.
void Relay::keep_write(const InFlight& r) {
  if (rio_full_) return;
  std::vector<char> m = with_ward_ids(r);
  auto kept = [&]() -> Result<Kept> {
    auto tx = WARD_TRY(rio_heap_->begin());
    auto a = WARD_TRY(tx.alloc(m.size()));
    std::memcpy(a.data, m.data(), m.size());
    WARD_TRY(tx.commit());
    return Kept{a.off, static_cast<std::uint32_t>(m.size())};
  }();
  if (!kept || rio_bytes_ + m.size() > o_.rio_size) {
    if (kept) (void)free_kept({*kept});
    log("--rio: " + (kept ? std::string("more than --rio-size of writes not yet made durable") : kept.error().detail) +
        "; ward stops keeping writes (a restart can lose what the file system had not made durable)");
    rio_full_ = true;
    return;
  }
  rio_bytes_ += m.size();
  kept_[r.ids.fh].push_back(*kept);
  ++stats_.rio_kept;
}

// One transaction frees them all.
Result<void> Relay::free_kept(const std::vector<Kept>& kept) {
  auto tx = WARD_TRY(rio_heap_->begin());
  for (const Kept& k : kept) WARD_TRY(tx.free(k.off));
  return tx.commit();
}

// FLUSH, FSYNC or RELEASE of `fh` succeeded: what was written through it is the file system's.
void Relay::made_durable(std::uint64_t fh) {
  auto it = kept_.find(fh);
  if (it == kept_.end()) return;
  auto freed = free_kept(it->second);
  if (!freed) log("--rio: freeing kept writes failed: " + freed.error().detail);
  for (const Kept& k : it->second) rio_bytes_ -= k.len, --stats_.rio_kept;
  kept_.erase(it);
}

// After a restart: every kept write again, in order, through its reopened handle. Returns how
// many were written.
Result<std::size_t> Relay::rewrite_kept() {
  std::size_t n = 0, lost = 0;
  const OpInfo* op = op_info(FUSE_WRITE);
  for (auto& [fh, list] : kept_) {
    Handle* h = handles_.find(fh);
    for (const Kept& k : list) {
      std::vector<char> m(rio_heap_->at<char>(k.off), rio_heap_->at<char>(k.off) + k.len);
      WardIds ids = ward_ids(m.data(), m.size(), *op);
      if (!h || h->stale || translate(m.data(), *op, ids) != 0) {
        ++lost;
        continue;
      }
      auto reply = WARD_TRY(call_again(std::move(m)));
      if (load<fuse_out_header>(reply.data()).error != 0) ++lost;
      else ++n, ++stats_.rio_rewritten;
    }
  }
  if (lost > 0)
    log("--rio: " + std::to_string(lost) + " kept writes could not be written again (handle lost or refused)");
  return n;
}

}  // namespace ward::fuse::detail
