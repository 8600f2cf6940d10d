// The crossing: what the typed stubs (iface/codec.h) see of one call into an extension and of
// one call out of it, whatever backend runs the extension.
//
// Memory: both sides address arguments by offset into one window of memory the extension can
// read and write (the process backend's shared arena). Offsets below `lo` belong to the backend
// (its control block) and are never handed out or accepted. The extension may change any byte
// of the window at any time: host code copies what it reads into host memory once and decides
// only on the copy; every offset or size the extension supplies is checked against the window
// before use (Call::returned_range, Upcall::range).
//
// Frames: a call's arguments live on a stack in the window. A Call (host -> extension) and an
// Upcall (extension -> host) allocate above everything the other side still needs and give it
// back when they end, so nested calls stack up and unwind in order.
//
// Lifetime and threads: a Call is created by Domain::begin on the calling thread, holds the
// domain for that thread until it is destroyed (calls into one domain are serialized), and must
// be destroyed on that thread. An Upcall lives only while the host service it describes runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ward/core/error.h"
#include "ward/core/handle_table.h"
#include "ward/core/schema.h"

namespace ward {

class Domain;
class OpaqueTable;
struct CallbackTarget;

// The extension-visible window, as the host addresses it: offsets in [lo, size) are frames.
struct MemoryView {
  std::byte* base = nullptr;
  std::uint64_t lo = 0;
  std::uint64_t size = 0;
  [[nodiscard]] bool contains(std::uint64_t off, std::uint64_t n) const {
    return off >= lo && off <= size && n <= size - off;
  }
  [[nodiscard]] std::uint64_t capacity() const { return size - lo; }
};

// A call in progress from the host into the extension (function `fn` of the plugin's table).
class Call {
 public:
  Call(Call&&) noexcept;
  Call& operator=(Call&&) = delete;
  ~Call();  // gives the frame space back and releases the domain (defined in backend.h)

  // Reserves frame space. Errors: misuse if `n` exceeds the whole frame area, limit if the
  // window has no room left at this nesting depth.
  [[nodiscard]] Result<std::uint64_t> alloc(std::uint64_t n, std::uint64_t align = 16) {
    const std::uint64_t off = schema::align_up(*top_, align);
    if (n > view_.capacity() || off > view_.size || n > view_.size - off) [[unlikely]]
      return alloc_failed(n, off);
    *top_ = off + n;
    return off;
  }
  [[nodiscard]] std::byte* at(std::uint64_t off) const { return view_.base + off; }
  // Sends the call with its frame at `frame_off` and waits, running the host services the
  // extension calls meanwhile. Returns the extension's result slot (validate before use).
  [[nodiscard]] Result<schema::Slot> invoke(std::uint64_t frame_off);  // defined in backend.h
  // Checks that [off, off + n) lies in the window (for offsets the extension returned); on
  // failure the extension is ended with a violation, which is returned.
  [[nodiscard]] Result<const std::byte*> returned_range(std::uint64_t off, std::uint64_t n) {
    if (!view_.contains(off, n)) [[unlikely]]
      return std::unexpected(violation("returned a pointer outside the arena (offset " + std::to_string(off) + ", " +
                                        std::to_string(n) + " bytes)"));
    return view_.base + off;
  }
  // Checks a handle the host passes (misuse) or the extension returns (violation: ends it).
  [[nodiscard]] Result<void> check_handle(std::uint64_t h, HandleType type, Rights required, bool from_extension);
  // Where a host pointer to `n` bytes lies in the domain's sandbox memory (backend/
  // sandbox_heap.h): its window offset, to pass in place; nullopt outside sandbox memory;
  // misuse inside it but not within one live allocation. Defined in backend.h.
  [[nodiscard]] Result<std::optional<std::uint64_t>> in_sandbox(const void* p, std::uint64_t n) const;
  // Registers the host's implementation of service table `table` (see Domain::set_service_impl).
  void set_service_impl(std::uint32_t table, const void* impl);
  // The domain's tokens for the extension's pointers (ward::opaque; backend/opaque_table.h).
  [[nodiscard]] OpaqueTable& opaques();  // defined in backend.h
  // Registers a host callback; its token (Domain::register_callback; limit errors decorated).
  [[nodiscard]] Result<std::uint64_t> register_callback(const CallbackTarget& t);  // in backend.h
  // Ends the extension with an Errc::violation and returns the recorded cause, decorated.
  [[nodiscard]] Error violation(std::string detail);
  // Prefixes plugin and function name to an error raised by the stub.
  [[nodiscard]] Error decorate(Error e) const;

  [[nodiscard]] std::uint32_t fn() const { return fn_; }
  [[nodiscard]] std::uint64_t top() const { return *top_; }

  // [deep] Descriptors (iface/deep.h, object.h). A call through an object names its object table
  // and the object's extension address, which must be one the extension returned (misuse
  // otherwise: nothing is sent); the frame's slot 0 carries the address.
  [[nodiscard]] Result<void> target(std::uint32_t table, std::uint64_t object);
  [[nodiscard]] std::uint32_t table() const { return table_; }
  [[nodiscard]] std::uint64_t object() const { return object_; }
  // Records an object the extension returned (a limit error past the domain's quota).
  [[nodiscard]] Result<void> note_object(std::uint32_t table, std::uint64_t address);
  // The object table of the type `key` names (detail::type_key), or 0.
  [[nodiscard]] std::uint32_t object_table(const void* key) const;
  // Names of the described structs and their fields, by struct id (Spec::struct_labels).
  [[nodiscard]] const std::vector<std::vector<std::string>>& struct_labels() const;
  [[nodiscard]] Domain& domain() const { return *d_; }

 private:
  friend class Domain;
  Call(Domain* d, std::uint32_t fn, MemoryView view, std::uint64_t* top)
      : d_(d), fn_(fn), view_(view), top_(top), saved_top_(*top) {}
  [[nodiscard]] std::unexpected<Error> alloc_failed(std::uint64_t n, std::uint64_t off) const;
  Domain* d_;
  std::uint32_t fn_;
  MemoryView view_;
  std::uint64_t* top_;  // the domain's frame-stack top (host's view)
  std::uint64_t saved_top_;
  std::uint32_t table_ = 0;   // [deep] 0: the extension's own table
  std::uint64_t object_ = 0;  // [deep] the object called through
};

// A call in progress from the extension into a host service. Handed to the service table's
// generated dispatcher, which reads the arguments through the checked accessors below (every
// offset the extension supplied is validated against the window before use) and writes results.
class Upcall {
 public:
  // `frame` holds the parameter slots after one unused slot; `top` is the first byte above
  // everything the extension still needs. The backend has checked that the slots lie in `view`.
  Upcall(Domain& d, MemoryView view, std::uint32_t table, std::uint32_t fn, std::uint64_t frame, std::uint64_t top)
      : d_(d), view_(view), table_(table), fn_(fn), frame_(frame), top_(top) {}

  // The i-th parameter slot (a copy: reading it twice gives the same value).
  [[nodiscard]] Result<schema::Slot> param(std::size_t i) const;
  // A host pointer to `n` bytes at offset `off`, after checking the whole range lies in the
  // frame area. Copy out of it at once: the extension can change the bytes at any time.
  [[nodiscard]] Result<const std::byte*> range(std::uint64_t off, std::uint64_t n) const;
  [[nodiscard]] Result<std::byte*> writable(std::uint64_t off, std::uint64_t n) const;
  // A NUL-terminated string at `off`, copied into host memory.
  [[nodiscard]] Result<std::string> string(std::uint64_t off) const;
  // Space in the window for a result the host writes back (a struct or a string). Errc::limit
  // when there is no room left above the extension's frames.
  [[nodiscard]] Result<std::uint64_t> alloc(std::uint64_t n, std::uint64_t align = 16);
  void set_return(schema::Slot s) { ret_ = s; }
  // An Errc::violation error naming the service; the dispatcher returns it to end the extension.
  [[nodiscard]] std::unexpected<Error> violation(std::string detail) const;
  // Checks a handle the extension passed (bad, wrong type, missing right -> violation).
  [[nodiscard]] Result<void> check_handle(std::uint64_t h, HandleType type, Rights required) const;
  // The domain's tokens for the extension's pointers (ward::opaque; backend/opaque_table.h).
  [[nodiscard]] OpaqueTable& opaques() const;  // defined in backend.h
  // The host callback behind the token the extension passed as this callback's user data
  // (iface/callback.h); a violation if the domain issued no such token for this callback type.
  [[nodiscard]] Result<CallbackTarget> callback(std::uint64_t token) const;

  // The domain the upcall comes from (its identity: iface/callback_journal.h).
  [[nodiscard]] const Domain& domain() const { return d_; }
  [[nodiscard]] std::uint32_t table() const { return table_; }
  [[nodiscard]] std::uint32_t fn() const { return fn_; }
  [[nodiscard]] std::uint64_t top() const { return top_; }
  [[nodiscard]] schema::Slot result() const { return ret_; }

 private:
  Domain& d_;
  MemoryView view_;
  std::uint32_t table_;
  std::uint32_t fn_;
  std::uint64_t frame_;
  std::uint64_t top_;
  schema::Slot ret_{0, 0};
};

}  // namespace ward
