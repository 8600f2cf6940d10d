// The token table of one domain: see ward/backend/opaque_table.h.
#include "ward/backend/opaque_table.h"

#include <sys/random.h>

#include <string>

namespace ward {

namespace {
// Bit 63 clear and bit 62 set: the upper bits differ, so no x86-64 canonical address (which
// repeats bit 47, or bit 56 with 5-level paging, up to bit 63). Bit 55 set: an AArch64 kernel-half
// address even where the top byte is ignored.
constexpr std::uint64_t kTokenClear = 1ull << 63;
constexpr std::uint64_t kTokenSet = (1ull << 62) | (1ull << 55);
}  // namespace

Result<std::uint64_t> OpaqueTable::fresh_token_locked() {
  for (;;) {
    if (random_left_ == 0) {
      // getrandom without flags waits only until the kernel's pool was first seeded (boot).
      if (getrandom(random_, sizeof random_, 0) != static_cast<ssize_t>(sizeof random_))
        return fail(Errc::limit, "no random bytes for an opaque pointer token (getrandom failed)");
      random_left_ = std::size(random_);
    }
    const std::uint64_t t = (random_[--random_left_] & ~kTokenClear) | kTokenSet;
    if (!live_.contains(t) && !stale_.contains(t)) return t;
  }
}

Result<std::uint64_t> OpaqueTable::token_for(std::uint64_t value, HandleType type) {
  if (value == 0) return 0;
  std::lock_guard g(mu_);
  if (auto it = by_value_.find({value, type}); it != by_value_.end()) return it->second;
  if (live_.size() >= kMaxEntries)
    return fail(Errc::limit, "the extension returned more than " + std::to_string(kMaxEntries) +
                                 " distinct opaque pointers to this domain");
  const std::uint64_t t = WARD_TRY(fresh_token_locked());
  live_.emplace(t, Entry{value, type, false});
  by_value_.emplace(std::pair{value, type}, t);
  return t;
}

Result<std::uint64_t> OpaqueTable::value_of(std::uint64_t token, HandleType type, std::string_view what) const {
  std::lock_guard g(mu_);
  auto it = live_.find(token);
  if (it == live_.end()) {
    // A text is the extension's memory of no particular type: it passes where a void * or a
    // char * is freed.
    if (auto t = texts_.find(token); t != texts_.end()) {
      if (type == handle_type<void>() || type == handle_type<char>()) return t->second.value;
      return fail(Errc::misuse, std::string(what) + " of another type: a string the extension allocated (ward::out_text) "
                                                    "passes only as a void * or char *");
    }
    if (stale_.contains(token) || stale_texts_.contains(token))
      return fail(Errc::misuse, std::string(what) + " from an instance that has since been restarted (only what calls "
                                                    "marked ward::replay_after_restart produced survives a restart)");
    return fail(Errc::misuse, "unknown " + std::string(what) +
                                  ": not one this instance handed out (forged, or from another extension or instance)");
  }
  if (it->second.type != type)
    return fail(Errc::misuse, std::string(what) + " of another type: this instance handed it out for a different "
                                                  "type than the parameter's");
  return it->second.value;
}

void OpaqueTable::inherit_stale(const OpaqueTable& previous) {
  if (&previous == this) return;
  std::scoped_lock g(mu_, previous.mu_);
  for (const std::uint64_t t : previous.stale_) {
    if (stale_.size() >= kMaxStale) return;
    if (!live_.contains(t)) stale_.insert(t);
  }
  for (const auto& [t, e] : previous.live_) {
    if (stale_.size() >= kMaxStale) return;
    if (!live_.contains(t)) stale_.insert(t);
  }
  // The host may still be reading its texts: their copies move here, stale.
  for (const auto& [t, copy] : previous.stale_texts_)
    if (stale_texts_.size() < kMaxStale) stale_texts_.emplace(t, copy);
  for (const auto& [t, text] : previous.texts_)
    if (stale_texts_.size() < kMaxStale) stale_texts_.emplace(t, text.copy);
}

void OpaqueTable::adopt(std::uint64_t fresh, std::uint64_t old) {
  if (fresh == 0 || old == 0 || fresh == old) return;
  std::lock_guard g(mu_);
  auto it = live_.find(fresh);
  if (it == live_.end()) return;
  const Entry e = it->second;
  if (!e.adopted) live_.erase(it);
  if (auto prev = live_.find(old); prev != live_.end()) {
    // `old` stood for another value until now: that value no longer has it as its token.
    auto back = by_value_.find({prev->second.value, prev->second.type});
    if (back != by_value_.end() && back->second == old) by_value_.erase(back);
  }
  live_.insert_or_assign(old, Entry{e.value, e.type, true});
  by_value_.insert_or_assign(std::pair{e.value, e.type}, old);
  stale_.erase(old);
}

std::vector<OpaqueTable::Live> OpaqueTable::live() const {
  std::lock_guard g(mu_);
  std::vector<Live> out;
  out.reserve(live_.size());
  for (const auto& [t, e] : live_) out.push_back({t, e.value, e.type});
  return out;
}

std::size_t OpaqueTable::size() const {
  std::lock_guard g(mu_);
  return live_.size();
}

Result<const char*> OpaqueTable::text_for(std::uint64_t value, std::string copy) {
  std::lock_guard g(mu_);
  if (texts_.size() >= kMaxEntries)
    return fail(Errc::limit, "the extension handed out more than " + std::to_string(kMaxEntries) +
                                 " strings (ward::out_text) that were not released");
  auto kept = std::make_shared<const std::string>(std::move(copy));
  const char* at = kept->c_str();
  texts_.insert_or_assign(reinterpret_cast<std::uintptr_t>(at), Text{value, std::move(kept)});
  return at;
}

void OpaqueTable::release(std::uint64_t token) {
  std::lock_guard g(mu_);
  if (texts_.erase(token)) return;
  auto it = live_.find(token);
  if (it == live_.end()) return;
  auto back = by_value_.find({it->second.value, it->second.type});
  if (back != by_value_.end() && back->second == token) by_value_.erase(back);
  live_.erase(it);
}

std::size_t OpaqueTable::texts() const {
  std::lock_guard g(mu_);
  return texts_.size();
}

}  // namespace ward
