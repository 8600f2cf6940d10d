// The child's half of a descriptor ([deep], core/schema.h "Descriptors"): after a call, follow a
// described struct's pointers in the extension's memory and write what they point to into the
// frame, in the order the host decodes it. Every read of extension memory is guarded (probe.h):
// a wild pointer becomes DeepStatus::unreadable in the header, not a crash; function pointers
// are checked to point into code; the whole serialization is bounded by `max_bytes`.
#pragma once

#include <cstdint>
#include <span>

#include "callee.h"
#include "ward/core/schema.h"

namespace ward::callee {

// Serializes the struct `id` at `p` (null: {kNull, 0}) above the view's top, which it advances.
// Returns the slot the host reads: {offset, bytes} of the serialization.
schema::Slot serialize_deep(MemoryView& view, std::span<const schema::Struct> structs, std::uint64_t max_bytes,
                            std::uint32_t id, const void* p);

}  // namespace ward::callee
