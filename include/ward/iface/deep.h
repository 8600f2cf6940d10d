// Descriptors: C structs of data and pointers (strings, arrays sized by a count field, nested
// structs, function pointers) that an extension returns or fills, copied deep into host memory.
//
//   WARD_STRUCT(LADSPA_PortRangeHint);  // no pointers: nothing to declare (optional)
//   WARD_STRUCT(LADSPA_Descriptor,
//       (Label, ward::text), (Name, ward::text),
//       (PortDescriptors, ward::array(&LADSPA_Descriptor::PortCount)),
//       (PortNames, ward::array(&LADSPA_Descriptor::PortCount)),       // an array of strings
//       (PortRangeHints, ward::array(&LADSPA_Descriptor::PortCount)),  // an array of structs
//       (ImplementationData, ward::skip),
//       (instantiate, ward::function), (run, ward::function), ...);
//   WARD_LIBRARY(ladspa_lib, (ladspa_descriptor, ward::returns_deep));
//   auto d = (*lib)->ladspa_descriptor(0);   // Result<Tainted<Deep<LADSPA_Descriptor>>>
//
// Declaring a field (each pointer member of T must be declared, or T does not compile):
//   ward::text              a const char * string
//   ward::array(&T::count)  a pointer to `count` elements (count: an integer field of T); the
//                           element is a scalar or pointer-free struct, a string (const char **),
//                           or itself a WARD_STRUCT type (nested, to any depth up to 16)
//   ward::one               a pointer to one such element
//   ward::function          a function pointer: checked to point into the extension's code, never
//                           copied (the host's copy holds null; Deep::has<&T::f>() says whether it
//                           was set); callable through ward::Object<T> (object.h)
//   ward::skip              a pointer the host does not follow (e.g. a plugin's private data): null
// WARD_STRUCT goes at global scope, before the interfaces that use T.
//
// Where a deep value comes from: a function result `const T *` annotated ward::returns_deep, or
// an out parameter `T *` (ward::out(i)) that the extension fills with pointers of its own (the
// host passes `deep.out()` of a ward::Deep<T> it owns).
//
// How: the host cannot read the extension's memory, so the child follows the pointers after the
// call, under a fault guard, and serializes what they point to into the frame (schema.h,
// "Descriptors"); the host copies that once and decodes the copy, checking every size against
// the bytes it holds. What the host gets is a ward::Deep<T>: a T whose pointers point into
// memory the Deep owns.
//
// Checks and errors (bad_data unless said otherwise; the domain stays up):
//  - a pointer to memory the child cannot read (the result itself, a string, an array): bad_data
//    naming the field ("unreadable"); a function pointer outside any loaded object's code:
//    bad_data ("not code");
//  - a string without its terminator or an array whose count is huge: the serialization is
//    bounded (schema::kDeepMaxBytes): bad_data ("too large");
//  - bools and enums anywhere in the copy are sanitized like every other value (values.h); an
//    enum outside its range is bad_data;
//  - a serialization that is malformed (sizes that do not add up): a violation.
// Taint: a deep result comes back Tainted<Deep<T>> like every result; a deep out parameter is
// written into the host's Deep like other out buffers (checked as above, not Tainted). The
// strings, counts and values inside are the extension's: structurally sound (terminated,
// bounded, counts equal to the array lengths the host holds), meaning unverified.
//
// Lifetime and threads: a Deep owns its copy (shared, immutable: copies are cheap and may be
// used from any thread). A Deep from a result also names the object the extension returned, for
// ward::Object<T>: its address and domain (through an Instance: valid while that Instance
// lives), or its token (through a Supervisor's Extension: valid while the Extension lives, across
// restarts when the call that returned it is replayed; object.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ward/backend/crossing.h"
#include "ward/core/error.h"
#include "ward/core/schema.h"
#include "ward/iface/detail/reflect.h"
#include "ward/iface/interface.h"
#include "ward/iface/values.h"

namespace ward {

class Domain;

// ---- field annotations ---------------------------------------------------------------------------
struct text_t {};
struct one_t {};
struct function_t {};
struct skip_t {};
template <class M>
struct array_t {
  M count;
};
inline constexpr text_t text{};
inline constexpr one_t one{};
inline constexpr function_t function{};
inline constexpr skip_t skip{};
template <class C, class N>
consteval array_t<N C::*> array(N C::*count) {
  return {count};
}

namespace detail {

template <class P>
inline constexpr bool is_string_ptr = std::is_same_v<std::remove_cv_t<P>, const char*> || std::is_same_v<std::remove_cv_t<P>, char*>;

template <class T>
inline constexpr bool has_pointer = [] {
  if constexpr (std::is_pointer_v<T> || std::is_member_pointer_v<T>) return true;
  else if constexpr (std::is_array_v<T>) return has_pointer<std::remove_cv_t<std::remove_all_extents_t<T>>>;
  else if constexpr (std::is_class_v<T> && reflectable<T>)
    return []<class... F>(types<F...>) { return (has_pointer<std::remove_cv_t<F>> || ...); }(field_types<T>{});
  else return false;
}();

// How one element of an array or `one` field crosses.
template <class E>
consteval schema::ElemKind elem_kind() {
  if constexpr (is_string_ptr<E>) return schema::ElemKind::text;
  else if constexpr (described<E>) return schema::ElemKind::nested;
  else return schema::ElemKind::bytes;
}

// One declared field: member M of its struct, annotation A (one of the values above).
template <auto M, auto A>
struct DeepField {
  using owner = typename member_of<decltype(M)>::owner;
  using type = std::remove_cv_t<typename member_of<decltype(M)>::type>;
  using ann = std::remove_cv_t<decltype(A)>;
  static constexpr auto member = M;
  static constexpr auto annotation = A;
  static constexpr bool is_array = requires { A.count; };
  static constexpr schema::FieldKind kind = std::is_same_v<ann, text_t>       ? schema::FieldKind::text
                                            : std::is_same_v<ann, one_t>      ? schema::FieldKind::one
                                            : std::is_same_v<ann, function_t> ? schema::FieldKind::function
                                            : std::is_same_v<ann, skip_t>     ? schema::FieldKind::skip
                                                                              : schema::FieldKind::array;
  static_assert(std::is_pointer_v<type>, "ward: WARD_STRUCT declares a field that is not a pointer");
  static_assert(kind != schema::FieldKind::text || is_string_ptr<type>, "ward: ward::text needs a const char * field");
  static_assert(kind != schema::FieldKind::function || std::is_function_v<std::remove_pointer_t<type>>,
                "ward: ward::function needs a function-pointer field");
  using elem = std::remove_cv_t<std::remove_pointer_t<type>>;  // array and one
  static constexpr bool elem_ok = [] {
    if constexpr (kind != schema::FieldKind::array && kind != schema::FieldKind::one) return true;
    else if constexpr (std::is_void_v<elem> || std::is_function_v<elem>) return false;
    else if constexpr (is_string_ptr<elem> || described<elem>) return true;
    else return !has_pointer<elem> && std::is_trivially_copyable_v<elem> && checkable<elem>;
  }();
  static_assert(elem_ok,
                "ward: an array or ward::one field must point to scalars, pointer-free structs, strings (const char *) "
                "or WARD_STRUCT types");
  static constexpr bool count_ok = [] {
    if constexpr (!is_array) {
      return true;
    } else {
      using CM = decltype(A.count);
      using N = std::remove_cv_t<typename member_of<CM>::type>;
      return std::is_same_v<typename member_of<CM>::owner, owner> && std::is_integral_v<N> && !std::is_same_v<N, bool>;
    }
  }();
  static_assert(count_ok, "ward: ward::array(&T::count) needs an integer field of the same struct");

  const char* name;
};

template <class T>
using deep_fields_t = std::remove_cvref_t<decltype(struct_traits<T>::fields)>;

// Byte offset of a data member (no object of T needs to exist).
template <auto M>
std::uint32_t field_offset() {
  using C = typename member_of<decltype(M)>::owner;
  alignas(C) static unsigned char storage[sizeof(C)];
  const C* c = reinterpret_cast<const C*>(storage);
  return static_cast<std::uint32_t>(reinterpret_cast<const unsigned char*>(&(c->*M)) - storage);
}

// The index (counting from 0) of T's first pointer member not declared in its WARD_STRUCT, or -1.
// Compares the members' addresses in a value-initialised T, a constant expression.
template <class T, class... Fs>
consteval int first_undeclared_pointer(types<Fs...>) {
  T t{};
  int result = -1;
  visit_fields(t, [&](auto&... f) {
    int i = 0;
    (
        [&](auto& one_field) {
          using FT = std::remove_cvref_t<decltype(one_field)>;
          const void* at = static_cast<const void*>(&one_field);
          const bool declared = ((at == static_cast<const void*>(&(t.*Fs::member))) || ...);
          if (result < 0 && has_pointer<FT> && !declared) result = i;
          ++i;
        }(f),
        ...);
    return 0;
  });
  return result;
}
template <class Tuple>
struct tuple_types;
template <class... Fs>
struct tuple_types<std::tuple<Fs...>> {
  using type = types<Fs...>;
};

// The error for an undeclared pointer member names it by position and type, in this template's
// arguments: "undeclared_pointer_member<LADSPA_Descriptor, 10, void *>".
template <class T, int Position, class FieldType>
struct undeclared_pointer_member {
  static_assert(Position < 0,
                "ward: WARD_STRUCT: this struct has a pointer member that is not declared (declare it ward::text, "
                "ward::array(&T::count), ward::one, ward::function or ward::skip); its position (from 0) and type are "
                "the arguments of ward::detail::undeclared_pointer_member");
  static constexpr bool value = true;
};
template <class L, int I>
struct nth_type {
  using type = void;
};
template <class... F, int I>
  requires(I >= 0)
struct nth_type<types<F...>, I> {
  using type = std::tuple_element_t<I, std::tuple<F...>>;
};

template <class T>
consteval bool struct_ok() {
  static_assert(reflectable<T>,
                "ward: WARD_STRUCT needs a plain C struct of at most 24 fields (no unions at top level, no base classes)");
  static_assert(alignof(T) <= alignof(std::max_align_t), "ward: WARD_STRUCT: over-aligned structs are not supported");
  constexpr int undeclared = first_undeclared_pointer<T>(typename tuple_types<deep_fields_t<T>>::type{});
  return undeclared_pointer_member<T, undeclared, typename nth_type<field_types<T>, undeclared>::type>::value;
}

// ---- the host's copy ----------------------------------------------------------------------------
// Memory a deep copy lives in: blocks allocated as decoding goes, freed together.
struct DeepStore {
  std::vector<std::unique_ptr<std::max_align_t[]>> blocks;
  void* alloc(std::size_t n) {
    const std::size_t k = (n + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t);
    blocks.push_back(std::make_unique<std::max_align_t[]>(k ? k : 1));
    return blocks.back().get();
  }
};

// [object] How a descriptor returned through a Supervisor is called (recovery/supervised_call.h
// fills it in, object.h uses it): the object is named by a token in the supervised extension's
// OpaqueTable, which a restart remaps, never by an address.
struct SupervisedObject {
  using Erased = void (*)();
  // Per function of T's interface, the Supervisor's typed call, as
  // Result<host_result_t<F>> (*)(const SupervisedObject&, typename F::args&).
  const Erased* calls = nullptr;
  void* core = nullptr;        // the Extension's recovery core (detail::RecoveryCore)
  std::uint64_t token = 0;     // the object's token
  bool replayed = false;       // the call that returned it is replayed after a restart
};

// A decoded value, type-erased: what Deep<T> holds and what decoding produces.
struct DeepValue {
  std::shared_ptr<const DeepStore> store;
  const void* root = nullptr;
  std::uint32_t functions = 0;  // bit i: declared field i is a non-null function pointer
  // The object the extension returned (results only): for ward::Object<T> (object.h).
  Domain* domain = nullptr;
  std::uint32_t table = 0;  // its object table; 0: not callable
  std::uint64_t address = 0;
  SupervisedObject supervised;  // [object] set instead of domain and table under a Supervisor
};

// Where the out() pointers of live Deep objects lead: an out parameter's codec finds the Deep
// the host passed from the T * the C signature takes.
struct DeepTargets {
  std::mutex mu;
  std::unordered_map<const void*, DeepValue*> at;
  static DeepTargets& get() {
    static DeepTargets t;
    return t;
  }
  void add(const void* p, DeepValue* v) {
    std::lock_guard<std::mutex> g(mu);
    at[p] = v;
  }
  void remove(const void* p) {
    std::lock_guard<std::mutex> g(mu);
    at.erase(p);
  }
  DeepValue* find(const void* p) {
    std::lock_guard<std::mutex> g(mu);
    auto it = at.find(p);
    return it == at.end() ? nullptr : it->second;
  }
};

template <class T>
struct field_index_of;

}  // namespace detail

template <class T>
class Object;

// A host-owned deep copy of a described T (see the file comment). Empty (false) for a null
// pointer. Copyable and movable; copies share the immutable data.
template <class T>
class Deep {
  static_assert(detail::described<T>, "ward: Deep<T> needs a WARD_STRUCT declaration of T");

 public:
  Deep() : cell_(std::make_unique<Cell>()) {}
  explicit Deep(detail::DeepValue v) : cell_(std::make_unique<Cell>()) { cell_->value = std::move(v); }
  Deep(const Deep& o) : cell_(std::make_unique<Cell>()) { cell_->value = o.cell_->value; }
  Deep(Deep&&) noexcept = default;
  Deep& operator=(const Deep& o) {
    if (this != &o) cell_->value = o.cell_->value;
    return *this;
  }
  Deep& operator=(Deep&& o) noexcept {
    if (this != &o) {
      unregister();
      cell_ = std::move(o.cell_);
    }
    return *this;
  }
  ~Deep() { unregister(); }

  [[nodiscard]] explicit operator bool() const { return cell_ && cell_->value.root; }
  [[nodiscard]] const T& operator*() const { return *get(); }
  [[nodiscard]] const T* operator->() const { return get(); }
  [[nodiscard]] const T* get() const { return cell_ ? static_cast<const T*>(cell_->value.root) : nullptr; }
  // Whether the extension's function pointer F (declared ward::function) was set.
  template <auto F>
  [[nodiscard]] bool has() const {
    return cell_ && (cell_->value.functions >> detail::field_index_of<T>::template of<F>()) & 1u;
  }
  // The object to call its function pointers through (object.h); results only.
  [[nodiscard]] Object<T> object() const;

  // For an out parameter `T *` of a described T: pass `deep.out()`; when the call succeeds the
  // Deep holds the copy of what the extension filled in. The pointer is valid while this Deep is.
  [[nodiscard]] T* out() {
    if (!cell_) cell_ = std::make_unique<Cell>();
    if (!cell_->registered) {
      detail::DeepTargets::get().add(&cell_->landing, &cell_->value);
      cell_->registered = true;
    }
    return &cell_->landing;
  }

  [[nodiscard]] const detail::DeepValue& value() const { return cell_->value; }

 private:
  struct Cell {
    detail::DeepValue value;
    T landing{};  // what out() hands out; never written (the call writes the frame's copy)
    bool registered = false;
  };
  void unregister() {
    if (cell_ && cell_->registered) detail::DeepTargets::get().remove(&cell_->landing);
  }
  std::unique_ptr<Cell> cell_;  // on the heap: out() pointers survive moves
};

namespace detail {

template <class T>
struct field_index_of {
  // The declared field for member F, or ~0u.
  template <auto F>
  static consteval std::uint32_t find() {
    return []<std::size_t... I>(std::index_sequence<I...>) {
      std::uint32_t found = ~0u;
      (
          [&] {
            constexpr auto m = std::tuple_element_t<I, deep_fields_t<T>>::member;
            if constexpr (std::is_same_v<std::remove_cv_t<decltype(m)>, std::remove_cv_t<decltype(F)>>)
              if (m == F) found = I;
          }(),
          ...);
      return found;
    }(std::make_index_sequence<std::tuple_size_v<deep_fields_t<T>>>{});
  }
  template <auto F>
  static consteval std::uint32_t of() {
    constexpr std::uint32_t i = find<F>();
    static_assert(i != ~0u, "ward: this member is not declared in the struct's WARD_STRUCT");
    return i;
  }
};

// A value unique to each type: how the domain finds a type's object table at run time.
template <class T>
const void* type_key() {
  static const char key = 0;
  return &key;
}

// ---- the wire records (built once per Spec) -----------------------------------------------------
// The struct records a Spec sends, with names for messages. Ids are indexes; nested types are
// added as they are met (a type refers to itself by its own id, so cycles are fine).
struct StructTable {
  std::vector<schema::Struct> records;
  std::vector<std::vector<std::string>> labels;  // [id]: "T", then "T::field" per declared field
  std::vector<const void*> keys;

  template <class T>
  std::uint32_t id() {
    const void* key = type_key<T>();
    for (std::size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == key) return static_cast<std::uint32_t>(i);
    const auto id = static_cast<std::uint32_t>(keys.size());
    keys.push_back(key);
    records.emplace_back();
    labels.emplace_back();
    schema::Struct s{};
    s.size = sizeof(T);
    std::vector<std::string> names{std::string(struct_traits<T>::name)};
    std::apply(
        [&](const auto&... f) {
          (
              [&](const auto& one_field) {
                using F = std::remove_cvref_t<decltype(one_field)>;
                schema::Field& r = s.fields[s.nfields++];
                r.offset = field_offset<F::member>();
                r.kind = F::kind;
                names.push_back(std::string(struct_traits<T>::name) + "::" + one_field.name);
                if constexpr (F::kind == schema::FieldKind::array || F::kind == schema::FieldKind::one) {
                  using E = typename F::elem;
                  r.elem = elem_kind<E>();
                  r.elem_size = sizeof(E);
                  if constexpr (described<E>) r.nested = static_cast<std::uint8_t>(this->id<E>());
                  if constexpr (F::is_array) {
                    r.count_offset = field_offset<F::annotation.count>();
                    r.count_width = sizeof(typename member_of<decltype(F::annotation.count)>::type);
                  }
                }
              }(f),
              ...);
        },
        struct_traits<T>::fields);
    records[id] = s;
    labels[id] = std::move(names);
    return id;
  }
};

// ---- decoding the child's serialization ---------------------------------------------------------
// Reads the host's copy of the bytes; every step checks what is left.
class DeepReader {
 public:
  explicit DeepReader(std::vector<std::byte> bytes) : b_(std::move(bytes)) {}
  bool take(std::uint64_t n, const std::byte*& out) {
    const std::uint64_t padded = schema::align_up(n, 8);
    if (n > b_.size() || padded > b_.size() - pos_) return false;
    out = b_.data() + pos_;
    pos_ += padded;
    return true;
  }
  bool u64(std::uint64_t& v) {
    const std::byte* p = nullptr;
    if (!take(8, p)) return false;
    std::memcpy(&v, p, 8);
    return true;
  }
  std::uint64_t left() const { return b_.size() - pos_; }
  const std::vector<std::byte>& bytes() const { return b_; }

 private:
  std::vector<std::byte> b_;
  std::uint64_t pos_ = 0;
};

struct DeepDecoder {
  DeepReader& in;
  DeepStore& store;
  const char* bad = nullptr;  // what did not add up (a violation)

  bool fail(const char* why) {
    bad = why;
    return false;
  }

  bool text(const char*& out) {
    std::uint64_t len = 0;
    if (!in.u64(len)) return fail("truncated string");
    if (len == schema::kNull) {
      out = nullptr;
      return true;
    }
    const std::byte* p = nullptr;
    if (len >= in.left() || !in.take(len + 1, p)) return fail("string longer than the serialization");
    if (p[len] != std::byte{0}) return fail("string without its terminator");
    auto* s = static_cast<char*>(store.alloc(len + 1));
    std::memcpy(s, p, len + 1);
    out = s;
    return true;
  }

  template <class E>
  bool element(E& dst, std::uint32_t depth) {
    if constexpr (is_string_ptr<E>) {
      const char* s = nullptr;
      if (!text(s)) return false;
      dst = const_cast<E>(s);  // char * elements: the host's copy, the host's to change
      return true;
    } else if constexpr (described<E>) {
      return node(dst, depth + 1);
    } else {
      const std::byte* p = nullptr;
      if (!in.take(sizeof(E), p)) return fail("truncated element");
      std::memcpy(static_cast<void*>(&dst), p, sizeof(E));
      return true;
    }
  }

  // Elements the serialization can hold at least: a bound on what the host allocates.
  template <class E>
  static constexpr std::uint64_t min_bytes = is_string_ptr<E> ? 8 : schema::align_up(sizeof(E), described<E> ? 8 : 1);

  template <class T>
  bool node(T& dst, std::uint32_t depth, std::uint32_t* functions = nullptr) {
    if (depth > schema::kMaxDeepDepth) return fail("nested too deep");
    const std::byte* raw = nullptr;
    if (!in.take(sizeof(T), raw)) return fail("truncated struct");
    std::memcpy(static_cast<void*>(&dst), raw, sizeof(T));
    std::uint32_t index = 0;
    bool ok = true;
    std::apply(
        [&](const auto&... f) {
          (
              [&](const auto& one_field) {
                using F = std::remove_cvref_t<decltype(one_field)>;
                const std::uint32_t i = index++;
                if (!ok) return;
                auto& ptr = dst.*F::member;
                if constexpr (F::kind == schema::FieldKind::text) {
                  const char* s = nullptr;
                  ok = text(s);
                  ptr = const_cast<typename F::type>(s);
                } else if constexpr (F::kind == schema::FieldKind::function) {
                  if (ptr && functions) *functions |= 1u << i;
                  ptr = nullptr;  // an extension address: never callable in the host
                } else if constexpr (F::kind == schema::FieldKind::skip) {
                  ptr = nullptr;
                } else {
                  using E = typename F::elem;
                  std::uint64_t count = 0;
                  ptr = nullptr;
                  if (!in.u64(count)) {
                    ok = fail("truncated count");
                    return;
                  }
                  if (count == schema::kNull) return;
                  if constexpr (F::is_array) {
                    // The array the host holds is exactly as long as the count field says.
                    const auto declared = dst.*F::annotation.count;
                    if (declared < 0 || static_cast<std::uint64_t>(declared) != count) {
                      ok = fail("array length differs from its count field");
                      return;
                    }
                  } else if (count != 1) {
                    ok = fail("bad one-element marker");
                    return;
                  }
                  if (count > in.left() / min_bytes<E>) {
                    ok = fail("count larger than the serialization");
                    return;
                  }
                  auto* elems = static_cast<E*>(store.alloc(sizeof(E) * (count ? count : 1)));
                  if constexpr (!is_string_ptr<E> && !described<E>) {
                    // Plain elements travel packed, as one record.
                    const std::byte* p = nullptr;
                    if (!in.take(sizeof(E) * count, p)) {
                      ok = fail("truncated array");
                      return;
                    }
                    std::memcpy(static_cast<void*>(elems), p, sizeof(E) * count);
                    if (!sanitize_all(elems, count)) ok = fail("enum out of range");
                  } else {
                    for (std::uint64_t k = 0; k < count && ok; ++k) {
                      new (static_cast<void*>(&elems[k])) E{};
                      ok = element(elems[k], depth);
                    }
                  }
                  ptr = elems;
                }
              }(f),
              ...);
        },
        struct_traits<T>::fields);
    if (!ok) return false;
    if (!sanitize(dst)) return fail("enum out of range");
    return true;
  }
};

// The value the child serialized at slot `s` (offset and bytes of the serialization; kNull: a
// null pointer). `labels` names the struct and field a child-side refusal is about.
template <class T>
Result<DeepValue> decode_deep(Call& c, const schema::Slot& s, const std::vector<std::vector<std::string>>& labels) {
  DeepValue v;
  if (s.a == schema::kNull) return v;
  if (s.b < sizeof(schema::DeepHeader) || s.b > schema::kDeepMaxBytes)
    return std::unexpected(c.violation("returned a descriptor serialization of a bad size"));
  auto p = WARD_TRY(c.returned_range(s.a, s.b));
  DeepReader in(std::vector<std::byte>(p, p + s.b));  // one copy; everything below reads it
  schema::DeepHeader h;
  std::memcpy(&h, in.bytes().data(), sizeof h);
  const std::byte* skip_header = nullptr;
  (void)in.take(sizeof h, skip_header);
  if (h.status != schema::DeepStatus::ok) {
    std::string where = "descriptor";
    if (h.where_struct < labels.size()) {
      const auto& l = labels[h.where_struct];
      where = h.where_field + 1 < l.size() ? l[h.where_field + 1] : l[0];
    }
    const char* why = h.status == schema::DeepStatus::unreadable ? "points to memory the extension cannot read"
                      : h.status == schema::DeepStatus::not_code ? "is a function pointer that does not point into code"
                      : h.status == schema::DeepStatus::too_big  ? "is too large (an unterminated string or a huge count)"
                      : h.status == schema::DeepStatus::too_deep ? "nests too deep"
                                                                 : "was refused";
    return std::unexpected(c.decorate(fail(Errc::bad_data, where + " " + why).error()));
  }
  auto store = std::make_shared<DeepStore>();
  auto* root = static_cast<T*>(store->alloc(sizeof(T)));
  new (static_cast<void*>(root)) T{};
  DeepDecoder d{in, *store};
  if (!d.node(*root, 0, &v.functions)) {
    if (std::string_view(d.bad) == "enum out of range")
      return std::unexpected(c.decorate(fail(Errc::bad_data, "descriptor: an enum value outside its declared range").error()));
    return std::unexpected(c.violation(std::string("malformed descriptor serialization: ") + d.bad));
  }
  v.store = std::move(store);
  v.root = root;
  v.address = h.address;
  return v;
}

}  // namespace detail
}  // namespace ward

// ---- the declaration macro -------------------------------------------------------------------
#define WARD_DETAIL_DEEP_FIELD(T, entry) WARD_DETAIL_DEEP_FIELD_I(T, WARD_DETAIL_UNPAREN entry)
#define WARD_DETAIL_DEEP_FIELD_I(T, ...) WARD_DETAIL_DEEP_FIELD_II(T, __VA_ARGS__)
#define WARD_DETAIL_DEEP_FIELD_II(T, field, ann) ::ward::detail::DeepField<&T::field, ann> { #field }

#define WARD_STRUCT(T, ...)                                                                         \
  template <>                                                                                       \
  struct ward::struct_traits<T> {                                                                   \
    static constexpr std::string_view name = #T;                                                    \
    static constexpr auto fields = std::make_tuple(WARD_DETAIL_FOR_EACH(WARD_DETAIL_DEEP_FIELD, T, __VA_ARGS__)); \
  };                                                                                                \
  static_assert(::ward::detail::struct_ok<T>())
