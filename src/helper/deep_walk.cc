#include "deep_walk.h"

#include <cstring>

#include "probe.h"

namespace ward::callee {

namespace sc = ward::schema;

namespace {

// The walk runs inside probe::guarded, which leaves it by a jump on a fault: nothing on its
// stack needs unwinding, and what the fault handler must see (where the walk was) is volatile,
// so it is in memory at the faulting read.
struct Walk {
  MemoryView* view;
  std::span<const sc::Struct> structs;
  std::uint64_t start;
  std::uint64_t end;  // the serialization may not grow past this offset
  volatile std::uint32_t at_struct = 0;
  volatile std::uint32_t at_field = ~0u;
  sc::DeepStatus status = sc::DeepStatus::ok;

  bool stop(sc::DeepStatus s) {
    status = s;
    return false;
  }
  // n bytes of frame, padded to 8; false (too_big) past the limit.
  bool room(std::uint64_t n, std::uint64_t& off) {
    const std::uint64_t top = sc::align_up(view->top, 8);
    if (n > end || top > end || sc::align_up(n, 8) > end - top) return stop(sc::DeepStatus::too_big);
    const std::uint64_t padded = sc::align_up(n, 8);
    off = view->reserve(padded, 8);
    return true;
  }
  bool put(const void* src, std::uint64_t n) {
    std::uint64_t off = 0;
    if (!room(n, off)) return false;
    std::memcpy(view->at(off), src, n);  // may fault: `src` is the extension's
    return true;
  }
  bool put_u64(std::uint64_t v) { return put(&v, sizeof v); }

  bool text(const char* s) {
    if (!s) return put_u64(sc::kNull);
    // Bounded scan: the string and its record must fit what is left.
    const std::uint64_t after_length = sc::align_up(view->top, 8) + 8;
    const std::uint64_t max = after_length < end ? end - after_length : 0;
    std::uint64_t len = 0;
    while (len < max && s[len] != '\0') ++len;
    if (len >= max) return stop(sc::DeepStatus::too_big);
    return put_u64(len) && put(s, len + 1);
  }

  bool element(const sc::Field& f, const unsigned char* q, std::uint32_t depth) {
    switch (f.elem) {
      case sc::ElemKind::bytes: return put(q, f.elem_size);
      case sc::ElemKind::text: {
        const char* s = nullptr;
        std::memcpy(&s, q, sizeof s);
        return text(s);
      }
      case sc::ElemKind::nested: return node(f.nested, q, depth + 1);
    }
    return false;
  }

  bool node(std::uint32_t id, const unsigned char* p, std::uint32_t depth) {
    if (depth > sc::kMaxDeepDepth) return stop(sc::DeepStatus::too_deep);
    const sc::Struct& st = structs[id];
    at_struct = id;
    at_field = ~0u;
    if (!put(p, st.size)) return false;
    for (std::uint32_t i = 0; i < st.nfields; ++i) {
      const sc::Field& f = st.fields[i];
      at_struct = id;
      at_field = i;
      const unsigned char* q = nullptr;
      std::memcpy(&q, p + f.offset, sizeof q);
      switch (f.kind) {
        case sc::FieldKind::text:
          if (!text(reinterpret_cast<const char*>(q))) return false;
          break;
        case sc::FieldKind::array: {
          std::uint64_t count = 0;
          std::memcpy(&count, p + f.count_offset, f.count_width);
          if (!q) {
            if (!put_u64(sc::kNull)) return false;
            break;
          }
          if (!put_u64(count)) return false;
          if (f.elem == sc::ElemKind::bytes) {
            std::uint64_t bytes = 0;
            if (__builtin_mul_overflow(count, f.elem_size, &bytes)) return stop(sc::DeepStatus::too_big);
            if (!put(q, bytes)) return false;
            break;
          }
          // Each element costs at least 8 bytes of the limit, so a huge count ends in too_big.
          for (std::uint64_t k = 0; k < count; ++k) {
            at_struct = id;
            at_field = i;
            if (!element(f, q + k * f.elem_size, depth)) return false;
          }
          break;
        }
        case sc::FieldKind::one:
          if (!q) {
            if (!put_u64(sc::kNull)) return false;
            break;
          }
          if (!put_u64(1) || !element(f, q, depth)) return false;
          break;
        case sc::FieldKind::function:
          if (q && !probe::in_executable_segment(q)) return stop(sc::DeepStatus::not_code);
          break;
        case sc::FieldKind::skip: break;
      }
    }
    return true;
  }
};

struct Job {
  Walk* w;
  std::uint32_t id;
  const unsigned char* p;
};

}  // namespace

sc::Slot serialize_deep(MemoryView& view, std::span<const sc::Struct> structs, std::uint64_t max_bytes,
                        std::uint32_t id, const void* p) {
  if (!p) return {sc::kNull, 0};
  const std::uint64_t start = view.reserve(sizeof(sc::DeepHeader), 8);
  const std::uint64_t limit = max_bytes < view.size - start ? start + max_bytes : view.size;
  Walk w{&view, structs, start, limit};
  Job job{&w, id, static_cast<const unsigned char*>(p)};
  if (id >= structs.size()) {
    w.status = sc::DeepStatus::unreadable;  // a corrupt schema: the host sees a refusal
  } else if (!probe::guarded([](void* a) {
               auto* j = static_cast<Job*>(a);
               (void)j->w->node(j->id, j->p, 0);
             }, &job)) {
    w.status = sc::DeepStatus::unreadable;
  }
  sc::DeepHeader h{};
  h.status = w.status;
  h.where_struct = w.at_struct;
  h.where_field = w.at_field;
  h.bytes = view.top - start;
  h.address = reinterpret_cast<std::uintptr_t>(p);
  std::memcpy(view.at(start), &h, sizeof h);
  return {start, h.bytes};
}

}  // namespace ward::callee
