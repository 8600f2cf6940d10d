// The sandbox heap's allocator and windows (backend/sandbox_heap.h): first fit over an ordered
// map of free blocks, coalesced on release. Everything here is host memory.
#include "ward/backend/sandbox_heap.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "ward/core/schema.h"

namespace ward {

namespace {
// Every heap alive in the process, for locate_any (the replay log meets host addresses without
// knowing their domain). Few heaps, so a list.
std::mutex g_registry_mu;
std::vector<SandboxHeap*> g_registry;
}  // namespace

std::shared_ptr<SandboxHeap> SandboxHeap::create(std::uint64_t size) {
  std::shared_ptr<SandboxHeap> h(new SandboxHeap(size));
  std::lock_guard<std::mutex> g(g_registry_mu);
  g_registry.push_back(h.get());
  return h;
}

SandboxHeap::SandboxHeap(std::uint64_t size) : size_(size) {
  if (size_ >= kMinAlign) free_.emplace(0, size_ - size_ % kMinAlign);
}

SandboxHeap::~SandboxHeap() {
  std::lock_guard<std::mutex> g(g_registry_mu);
  std::erase(g_registry, this);
}

Result<std::uint64_t> SandboxHeap::alloc(std::uint64_t bytes, std::uint64_t align) {
  align = std::max(align, kMinAlign);
  if ((align & (align - 1)) != 0 || align > kMaxAlign)
    return fail(Errc::misuse, "sandbox memory: alignment " + std::to_string(align) + " is not a power of two up to 4096");
  if (bytes > size_) return fail(Errc::limit, "sandbox memory exhausted: " + std::to_string(bytes) +
                                                  " bytes requested, the heap holds " + std::to_string(size_) +
                                                  " (raise Policy sandbox_memory)");
  bytes = schema::align_up(std::max<std::uint64_t>(bytes, 1), kMinAlign);
  std::lock_guard<std::mutex> g(mu_);
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    const auto [start, len] = *it;
    const std::uint64_t at = schema::align_up(start, align);
    if (at - start > len || bytes > len - (at - start)) continue;
    free_.erase(it);
    if (at > start) free_.emplace(start, at - start);
    if (at + bytes < start + len) free_.emplace(at + bytes, start + len - (at + bytes));
    live_.emplace(at, bytes);
    in_use_ += bytes;
    // What a freed block (or the extension) left there is no part of a new allocation.
    if (w_.host) std::memset(w_.host + at, 0, bytes);
    return at;
  }
  return fail(Errc::limit, "sandbox memory exhausted: " + std::to_string(bytes) + " bytes requested, " +
                               std::to_string(size_ - in_use_) + " free in blocks too small (raise Policy sandbox_memory)");
}

Result<void> SandboxHeap::release(std::uint64_t off) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = live_.find(off);
  if (it == live_.end()) return fail(Errc::misuse, "sandbox memory: no live allocation at offset " + std::to_string(off));
  std::uint64_t start = it->first, len = it->second;
  live_.erase(it);
  in_use_ -= len;
  // Coalesce with the free neighbours on both sides.
  auto next = free_.lower_bound(start);
  if (next != free_.end() && next->first == start + len) {
    len += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) {
      start = prev->first;
      len += prev->second;
      free_.erase(prev);
    }
  }
  free_.emplace(start, len);
  return {};
}

std::uint64_t SandboxHeap::in_use() const {
  std::lock_guard<std::mutex> g(mu_);
  return in_use_;
}

bool SandboxHeap::live_locked(std::uint64_t off, std::uint64_t n) const {
  auto it = live_.upper_bound(off);
  if (it == live_.begin()) return false;
  --it;
  return off - it->first <= it->second && n <= it->second - (off - it->first);
}

std::optional<std::uint64_t> SandboxHeap::locate(const void* p, std::uint64_t n, bool& inside) const {
  // Most buffers are host memory: tell them apart without the lock (every buffer argument of
  // every call asks). A window changing meanwhile is decided again under the lock.
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t lo = lo_.load(std::memory_order_acquire);
  if (a < lo || a - lo >= size_) {
    inside = false;
    return std::nullopt;
  }
  std::lock_guard<std::mutex> g(mu_);
  const auto* b = static_cast<const std::byte*>(p);
  inside = w_.host && b >= w_.host && b < w_.host + size_;
  if (!inside) return std::nullopt;
  const auto off = static_cast<std::uint64_t>(b - w_.host);
  if (!live_locked(off, n)) return std::nullopt;
  return off;
}

std::optional<SandboxHeap::Found> SandboxHeap::locate_any(const void* p, std::uint64_t n) {
  std::lock_guard<std::mutex> g(g_registry_mu);
  for (SandboxHeap* h : g_registry) {
    bool inside = false;
    if (auto off = h->locate(p, n, inside)) {
      // A heap whose last owner is dropping it right now (its destructor waits for this lock)
      // yields null.
      auto heap = h->weak_from_this().lock();
      if (!heap) return std::nullopt;
      return Found{std::move(heap), *off};
    }
  }
  return std::nullopt;
}

std::byte* SandboxHeap::host_at(std::uint64_t off) const {
  std::lock_guard<std::mutex> g(mu_);
  return w_.host ? w_.host + off : nullptr;
}

std::uint64_t SandboxHeap::view_off(std::uint64_t off) const {
  std::lock_guard<std::mutex> g(mu_);
  return w_.view_off + off;
}

std::uint64_t SandboxHeap::ext_at(std::uint64_t off) const {
  std::lock_guard<std::mutex> g(mu_);
  return w_.host ? w_.ext + off : 0;
}

Result<void> SandboxHeap::copy_in(std::uint64_t off, const void* src, std::uint64_t n) {
  std::lock_guard<std::mutex> g(mu_);
  if (!w_.host) return fail(Errc::misuse, "sandbox memory: its domain has ended");
  if (!live_locked(off, n)) return fail(Errc::misuse, "sandbox memory: write outside a live allocation");
  std::memcpy(w_.host + off, src, n);
  return {};
}

Result<void> SandboxHeap::copy_out(std::uint64_t off, void* dst, std::uint64_t n) const {
  std::lock_guard<std::mutex> g(mu_);
  if (!w_.host) return fail(Errc::misuse, "sandbox memory: its domain has ended");
  if (!live_locked(off, n)) return fail(Errc::misuse, "sandbox memory: read outside a live allocation");
  std::memcpy(dst, w_.host + off, n);
  return {};
}

void SandboxHeap::attach(const void* owner, Window w, bool copy_bytes) {
  std::lock_guard<std::mutex> g(mu_);
  if (copy_bytes && w_.host && w_.host != w.host) std::memcpy(w.host, w_.host, size_);
  owner_ = owner;
  w_ = w;
  lo_.store(reinterpret_cast<std::uintptr_t>(w.host), std::memory_order_release);
}

void SandboxHeap::detach(const void* owner) noexcept {
  std::lock_guard<std::mutex> g(mu_);
  if (owner_ != owner) return;
  owner_ = nullptr;
  w_ = {};
  lo_.store(kNoWindow, std::memory_order_release);
}

}  // namespace ward
