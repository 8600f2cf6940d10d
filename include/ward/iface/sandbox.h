// Sandboxed<T>: memory in the extension's domain that outlives a call (RLBox's
// malloc_in_sandbox), for libraries that keep pointers between calls: ports connected once and
// used by every later call, stream structs the library fills with pointers and positions.
//
//   auto buf = inst.alloc<float>(256);                     // Result<Sandboxed<float>>
//   std::fill_n(buf->host_ptr(), 256, 1.0f);               // bulk host writes
//   inst.call<&dsp_api::connect>(0, *buf);                 // in place: the library keeps it
//   inst.call<&dsp_api::run>(256);
//   ward::Tainted<float> y = *buf->read(3);                // a checked copy
//   stream->src = buf->in_extension();                     // a pointer valid in the extension
//
// Passing: a Sandboxed<T> converts to the T* a C signature takes (its host address). Any buffer
// argument (in/out/inout) whose host address lies inside a live allocation is passed in place
// (nothing is copied in or back: the extension reads and writes it directly); ward::shared(i)
// requires that and is checked (interface.h). A host address inside sandbox memory but not in
// a live allocation (freed, or running past its end) is misuse.
//
// Trust: the extension may change the bytes at any time. read() copies once and sanitizes the
// copy (bools 0/1, enums in range, otherwise bad_data), returning it Tainted. host_ptr() is for
// bulk host writes: whatever the host reads through it is the extension's word.
//
// Lifetime: a Sandboxed<T> owns its allocation and frees it when destroyed (or with free()); it
// holds the heap, not the domain. When the domain ends, accesses fail with misuse. Under a
// Supervisor the heap moves to each restarted instance with its contents and addresses, so the
// handle keeps working; host_ptr() and the T* conversion give the current instance's address:
// take them again after a restart (never keep them across calls that may restart).
//
// Threads: a Sandboxed<T> is one owner's (like a unique_ptr); distinct handles may be used from
// different threads.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "ward/backend/backend.h"
#include "ward/backend/sandbox_heap.h"
#include "ward/core/error.h"
#include "ward/core/tainted.h"
#include "ward/iface/values.h"

namespace ward {

template <class T>
class Sandboxed {
  static_assert(std::is_trivially_copyable_v<T> && !std::is_const_v<T>,
                "ward: sandbox memory holds trivially copyable, non-const objects");

 public:
  Sandboxed() = default;
  Sandboxed(std::shared_ptr<SandboxHeap> heap, std::uint64_t off, std::size_t count)
      : heap_(std::move(heap)), off_(off), count_(count) {}
  Sandboxed(Sandboxed&& o) noexcept
      : heap_(std::move(o.heap_)), off_(o.off_), count_(std::exchange(o.count_, 0)) {}
  Sandboxed& operator=(Sandboxed&& o) noexcept {
    if (this != &o) {
      free();
      heap_ = std::move(o.heap_);
      off_ = o.off_;
      count_ = std::exchange(o.count_, 0);
    }
    return *this;
  }
  ~Sandboxed() { free(); }

  [[nodiscard]] std::size_t size() const { return count_; }
  [[nodiscard]] explicit operator bool() const { return heap_ != nullptr; }

  // Host writes. Errors: misuse past the end, after free(), or when the domain has ended.
  [[nodiscard]] Result<void> write(const T& v) { return write(0, v); }
  [[nodiscard]] Result<void> write(std::size_t i, const T& v) {
    WARD_TRY(check(i));
    return heap_->copy_in(off_ + i * sizeof(T), &v, sizeof(T));
  }
  // A copy of element i, checked (values.h) and tainted. Errors: as write(), and bad_data when the
  // copy holds a value no T may hold.
  [[nodiscard]] Result<Tainted<T>> read(std::size_t i = 0) const {
    WARD_TRY(check(i));
    T copy;
    WARD_TRY(heap_->copy_out(off_ + i * sizeof(T), &copy, sizeof(T)));
    if (!detail::sanitize(copy)) return fail(Errc::bad_data, "sandbox memory holds an invalid value (element " +
                                                                 std::to_string(i) + ")");
    return Tainted<T>(copy);
  }

  // The first element's host address in the current instance, or null (freed, domain ended).
  // For bulk writes; reads through it are the extension's word. Invalid after a restart.
  [[nodiscard]] T* host_ptr() const {
    return heap_ ? reinterpret_cast<T*>(heap_->host_at(off_)) : nullptr;
  }
  // What the C signature takes: the host address, which the stubs recognise and pass in place.
  operator T*() const { return host_ptr(); }  // NOLINT: implicit, to read like the C call
  // The address the extension sees: store it in structs the library reads. Never dereference it
  // in the host. Null when freed or the domain has ended.
  [[nodiscard]] T* in_extension() const {
    return heap_ ? reinterpret_cast<T*>(static_cast<std::uintptr_t>(heap_->ext_at(off_))) : nullptr;
  }

  // Gives the memory back now (idempotent). The extension must no longer use it.
  void free() noexcept {
    if (!heap_) return;
    (void)heap_->release(off_);
    heap_.reset();
    count_ = 0;
  }

 private:
  [[nodiscard]] Result<void> check(std::size_t i) const {
    if (!heap_) return fail(Errc::misuse, "sandbox memory used after free()");
    if (i >= count_)
      return fail(Errc::misuse, "sandbox memory: element " + std::to_string(i) + " of " + std::to_string(count_));
    return {};
  }

  std::shared_ptr<SandboxHeap> heap_;
  std::uint64_t off_ = 0;
  std::size_t count_ = 0;
};

// `n` Ts, zero bytes (the heap zeroes fresh blocks), in `d`'s sandbox memory. Errors: misuse when the policy gives no
// sandbox memory, n == 0 or the size overflows; limit when the heap has no room.
template <class T>
[[nodiscard]] Result<Sandboxed<T>> sandbox_alloc(Domain& d, std::size_t n) {
  const std::shared_ptr<SandboxHeap>& heap = d.sandbox();
  if (!heap) return fail(Errc::misuse, "this domain has no sandbox memory (Policy sandbox_memory is 0)");
  if (n == 0 || n > heap->size() / sizeof(T)) {
    if (n == 0) return fail(Errc::misuse, "sandbox memory: zero elements requested");
    return fail(Errc::limit, "sandbox memory exhausted: " + std::to_string(n) + " elements of " +
                                 std::to_string(sizeof(T)) + " bytes exceed the heap (raise Policy sandbox_memory)");
  }
  const std::uint64_t off = WARD_TRY(heap->alloc(n * sizeof(T), alignof(T)));
  return Sandboxed<T>(heap, off, n);
}

namespace detail {
// Where each pointer argument of a call lies in sandbox memory, if it does. A supervised call
// retried after a restart must pass the same allocations at the fresh instance's host addresses:
// the failed instance's window is unmapped by then (the heap moved, with its offsets).
template <class Args>
using SandboxPlaces = std::array<std::optional<SandboxHeap::Found>, std::tuple_size_v<Args>>;

template <class P>
inline constexpr bool data_pointer = std::is_pointer_v<P> && !std::is_function_v<std::remove_pointer_t<P>>;

// Taken while the failed instance still holds the heap (before recovery moves it).
template <class Args, std::size_t... I>
SandboxPlaces<Args> sandbox_places(const Args& args, std::index_sequence<I...>) {
  SandboxPlaces<Args> at{};
  (
      [&] {
        if constexpr (data_pointer<std::tuple_element_t<I, Args>>) {
          if (const auto p = std::get<I>(args)) at[I] = SandboxHeap::locate_any(static_cast<const void*>(p), 1);
        }
      }(),
      ...);
  return at;
}

// The arguments with every sandbox pointer moved to its allocation's current host address.
template <class Args, std::size_t... I>
void rebase_sandbox(Args& args, const SandboxPlaces<Args>& at, std::index_sequence<I...>) {
  (
      [&] {
        using P = std::tuple_element_t<I, Args>;
        if constexpr (data_pointer<P>) {
          if (at[I]) std::get<I>(args) = reinterpret_cast<P>(at[I]->heap->host_at(at[I]->off));
        }
      }(),
      ...);
}
}  // namespace detail

}  // namespace ward
