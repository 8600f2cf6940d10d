#include "ward/core/handle_table.h"

#include <sys/random.h>

#include <algorithm>

namespace ward {

// One granted object and the handles that name it.
struct HandleTable::Object {
  std::shared_ptr<void> obj;
  std::function<void()> release;
  std::uint32_t handles = 0;  // guarded by the table's lock
};

namespace {

constexpr std::uint64_t kCheck = 0xA5A5;  // plaintext tag: random values decode to garbage
constexpr std::uint32_t kMask24 = 0xFFFFFF;

std::uint32_t fmix32(std::uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

Error bad(std::string what) {
  Error e;
  e.kind = Errc::violation;
  e.detail = std::move(what);
  return e;
}

}  // namespace

HandleTable::HandleTable(std::size_t quota, std::uint32_t generations)
    : quota_(quota),
      max_slots_(std::min(std::min(quota, std::size_t{kMask24} + 1) * 2, std::size_t{kMask24} + 1)),
      generations_(std::clamp<std::uint32_t>(generations, 1, kMaxGenerations)) {
  if (getrandom(key_, sizeof key_, 0) != static_cast<ssize_t>(sizeof key_)) {
    // No entropy source: still a keyed permutation, just a weaker key.
    const auto seed = reinterpret_cast<std::uintptr_t>(this) ^ static_cast<std::uint64_t>(time(nullptr));
    for (int i = 0; i < 4; ++i) key_[i] = seed * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(i);
  }
}

HandleTable::~HandleTable() { release_all(); }

// A 4-round Feistel network over the two 32-bit halves, keyed per table: a bijection, so every
// (index, generation) has exactly one value, and without the key values look random.
Handle HandleTable::encode(std::uint32_t index, std::uint32_t generation) const {
  const std::uint64_t plain = (kCheck << 48) | (static_cast<std::uint64_t>(generation & kMask24) << 24) | (index & kMask24);
  auto l = static_cast<std::uint32_t>(plain >> 32), r = static_cast<std::uint32_t>(plain);
  for (int i = 0; i < 4; ++i) {
    const std::uint32_t t = l ^ fmix32(r ^ static_cast<std::uint32_t>(key_[i]) ^ static_cast<std::uint32_t>(key_[i] >> 32));
    l = r;
    r = t;
  }
  return (static_cast<std::uint64_t>(l) << 32) | r;
}

bool HandleTable::decode(Handle h, std::uint32_t& index, std::uint32_t& generation) const {
  auto l = static_cast<std::uint32_t>(h >> 32), r = static_cast<std::uint32_t>(h);
  for (int i = 3; i >= 0; --i) {
    const std::uint32_t t = r ^ fmix32(l ^ static_cast<std::uint32_t>(key_[i]) ^ static_cast<std::uint32_t>(key_[i] >> 32));
    r = l;
    l = t;
  }
  const std::uint64_t plain = (static_cast<std::uint64_t>(l) << 32) | r;
  if ((plain >> 48) != kCheck) return false;
  index = static_cast<std::uint32_t>(plain & kMask24);
  generation = static_cast<std::uint32_t>((plain >> 24) & kMask24);
  return true;
}

Result<std::uint32_t> HandleTable::find_locked(Handle h) const {
  std::uint32_t index, gen;
  if (!decode(h, index, gen) || index >= slots_.size() || !slots_[index].used || slots_[index].generation != gen)
    return std::unexpected(bad("bad handle"));
  return index;
}

Result<Handle> HandleTable::insert_locked(std::shared_ptr<Object> obj, HandleType type, Rights r) {
  if (live_ >= quota_)
    return std::unexpected([&] {
      Error e;
      e.kind = Errc::limit;
      e.detail = "handle quota of " + std::to_string(quota_) + " exhausted";
      return e;
    }());
  std::uint32_t index;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
  } else {
    // Every slot is live or retired. Growing past the bound would let retirements eat memory.
    if (slots_.size() >= max_slots_)
      return fail(Errc::limit, "no free handle slot: " + std::to_string(retired_) + " of " +
                                   std::to_string(slots_.size()) + " slots retired (generations used up)");
    index = static_cast<std::uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& s = slots_[index];
  s.used = true;
  s.type = type;
  s.rights = r;
  ++obj->handles;
  s.object = std::move(obj);
  ++live_;
  return encode(index, s.generation);
}

Result<Handle> HandleTable::grant_erased(std::shared_ptr<void> obj, HandleType type, Rights r,
                                         std::function<void()> release) {
  auto o = std::make_shared<Object>();
  o->obj = std::move(obj);
  o->release = std::move(release);
  std::lock_guard<std::mutex> g(mu_);
  auto h = insert_locked(std::move(o), type, r);
  if (h) granted_.fetch_add(1);
  return h;
}

Result<std::shared_ptr<void>> HandleTable::lookup_erased(Handle h, HandleType type, Rights required) const {
  std::lock_guard<std::mutex> g(mu_);
  const std::uint32_t index = WARD_TRY(find_locked(h));
  const Slot& s = slots_[index];
  if (s.type != type) return std::unexpected(bad("wrong handle type"));
  if ((s.rights & required) != required) return std::unexpected(bad("handle lacks a required right"));
  return s.object->obj;
}

Result<void> HandleTable::check(Handle h, HandleType type, Rights required) const {
  WARD_TRY(lookup_erased(h, type, required));
  return {};
}

Result<Handle> HandleTable::duplicate(Handle h, Rights mask) {
  std::lock_guard<std::mutex> g(mu_);
  const std::uint32_t index = WARD_TRY(find_locked(h));
  const Slot& s = slots_[index];
  if ((s.rights & rights::duplicate) == 0) return std::unexpected(bad("handle lacks a required right"));
  auto obj = s.object;
  const HandleType type = s.type;
  const Rights r = s.rights & mask;  // rights only shrink
  return insert_locked(std::move(obj), type, r);
}

void HandleTable::drop_locked(std::uint32_t index, std::vector<std::shared_ptr<Object>>& released) {
  Slot& s = slots_[index];
  s.used = false;
  if (--s.object->handles == 0) released.push_back(std::move(s.object));
  s.object.reset();
  recycle_locked(index);
  --live_;
}

void HandleTable::recycle_locked(std::uint32_t index) {
  Slot& s = slots_[index];
  if (s.generation >= generations_) {
    // The next generation would wrap to a value already issued: this slot is done.
    s.retired = true;
    ++retired_;
    return;
  }
  ++s.generation;
  free_.push_back(index);
}

void HandleTable::run_releases(std::vector<std::shared_ptr<Object>>& released, std::atomic<std::uint64_t>& count) {
  for (auto& o : released) {
    if (o->release) {
      auto f = std::move(o->release);
      o->release = nullptr;
      f();
    }
    count.fetch_add(1);
  }
}

Result<void> HandleTable::close(Handle h) {
  std::vector<std::shared_ptr<Object>> released;
  {
    std::lock_guard<std::mutex> g(mu_);
    drop_locked(WARD_TRY(find_locked(h)), released);
  }
  run_releases(released, released_);  // outside the lock
  return {};
}

Result<void> HandleTable::revoke(Handle h) {
  std::vector<std::shared_ptr<Object>> released;
  {
    std::lock_guard<std::mutex> g(mu_);
    const std::uint32_t index = WARD_TRY(find_locked(h));
    const Object* target = slots_[index].object.get();
    for (std::uint32_t i = 0; i < slots_.size(); ++i)
      if (slots_[i].used && slots_[i].object.get() == target) drop_locked(i, released);
  }
  run_releases(released, released_);
  return {};
}

std::size_t HandleTable::release_all() {
  std::vector<Slot> old;
  {
    // Swap the whole table out under the lock; release outside it.
    std::lock_guard<std::mutex> g(mu_);
    old.swap(slots_);
    free_.clear();
    live_ = 0;
    // Used slots move to their next generation (or retire) so values issued before never become
    // valid again; free slots keep theirs, never issued. Slot 0 ends up reused first.
    slots_.resize(old.size());
    for (auto i = static_cast<std::uint32_t>(old.size()); i-- > 0;) {
      slots_[i].generation = old[i].generation;
      slots_[i].retired = old[i].retired;
      if (old[i].retired) continue;
      if (old[i].used) recycle_locked(i);
      else free_.push_back(i);
    }
  }
  std::vector<std::shared_ptr<Object>> released;
  for (Slot& s : old) {
    if (!s.used) continue;
    if (--s.object->handles == 0) released.push_back(std::move(s.object));
  }
  const std::size_t n = released.size();
  run_releases(released, released_);
  return n;
}

std::size_t HandleTable::live_handles() const {
  std::lock_guard<std::mutex> g(mu_);
  return live_;
}

std::size_t HandleTable::live_objects() const {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<const Object*> seen;
  for (const Slot& s : slots_)
    if (s.used) seen.push_back(s.object.get());
  std::sort(seen.begin(), seen.end());
  return static_cast<std::size_t>(std::unique(seen.begin(), seen.end()) - seen.begin());
}

}  // namespace ward
