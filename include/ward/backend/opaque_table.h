// OpaqueTable: one domain's tokens for the extension's own pointers (ward::opaque,
// ward::returns_opaque, ward::out_opaque; the host-side type is iface/opaque.h).
//
// Why: a library's object pointer (a struct sqlite3 *, a void * handle) is an address in the
// extension's process. To the host it is meaningless, and dangerous: the host cannot tell a wild
// pointer from a real one, and an address that happens to be valid in the host would read host
// memory if dereferenced. So the host never sees it. Each (value, type) the extension hands out
// is kept here under a token; the host holds the token; a token passed back is looked up here and
// only the value found crosses. A token is refused (Errc::misuse, before anything is sent) when
// this table never issued it (forged, or from another domain), when it was issued for another
// type, or when it belongs to an instance that has since been restarted (stale).
//
// Tokens: 61 random bits (getrandom) with bits 62 and 55 set and bit 63 clear. So a token is never
// 0 and never a usable address: non-canonical on x86-64 (4- and 5-level paging) and outside user
// space on AArch64, so it can never equal a real host pointer and dereferencing one faults.
//
// One (value, type), one token: an extension returning the same pointer twice gives the host the
// same token, so tokens compare as the pointers they stand for. Entries stay until the domain ends
// (ward does not know which call frees an object): one entry per distinct (value, type) the
// extension returned, at most kMaxEntries, then Errc::limit.
//
// Across restarts (recovery/supervisor.h): a fresh domain inherits its predecessor's tokens as
// stale (inherit_stale), and a replayed call that produced a token installs the fresh instance's
// value under the token the host already holds (adopt), which makes it live again. The
// Supervisor keeps the extension handles it virtualises here too (recovery/replay_log.h).
//
// Texts (ward::out_text, iface/opaque.h, "Texts"): a string the extension allocated is kept here as a
// host-owned copy whose address is its token, so the host reads it as the C string it is and
// passes it back, to a void * or char * opaque parameter, as the extension's pointer. A text is
// freed by release (ward::releases) or with the table; after a restart it stays readable (the
// fresh table holds the copy) but is stale when passed back.
//
// Threads: every member may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ward/core/error.h"
#include "ward/core/handle_table.h"

namespace ward {

class OpaqueTable {
 public:
  static constexpr std::size_t kMaxEntries = std::size_t{1} << 20;
  // Stale tokens kept for their message: forgetting one only turns "stale" into "unknown".
  static constexpr std::size_t kMaxStale = std::size_t{1} << 20;

  OpaqueTable() = default;
  OpaqueTable(const OpaqueTable&) = delete;
  OpaqueTable& operator=(const OpaqueTable&) = delete;

  // The token standing for the extension's `value` of `type` (issued now, or the one issued
  // before for the same pair); 0 for a null value. Errors: limit (kMaxEntries reached).
  [[nodiscard]] Result<std::uint64_t> token_for(std::uint64_t value, HandleType type);
  // The extension's value behind a non-zero `token` issued for `type`. Errors: misuse (unknown,
  // stale, or issued for another type), the reason in the detail, which calls the token `what`.
  [[nodiscard]] Result<std::uint64_t> value_of(std::uint64_t token, HandleType type,
                                               std::string_view what = "opaque pointer") const;

  // Recovery. Every token `previous` knows (live or stale) becomes a stale token of this table.
  void inherit_stale(const OpaqueTable& previous);
  // `fresh` (a token this table issued, during a replay) stands for the same value as `old` (a
  // token the host holds from an earlier instance): `old` becomes live here. `fresh` is dropped
  // unless it was itself adopted. Nothing happens if either is 0 or `fresh` is unknown.
  void adopt(std::uint64_t fresh, std::uint64_t old);

  [[nodiscard]] std::size_t size() const;
  // The live tokens and what each stands for (a checkpoint keeps them: recovery/checkpoint.h).
  struct Live {
    std::uint64_t token, value;
    HandleType type;
  };
  [[nodiscard]] std::vector<Live> live() const;

  // [sqlite] Keeps `copy` of the string at the extension's `value` (non-zero) and returns the
  // copy's NUL-terminated host address, which is also its token. Errors: limit (kMaxEntries texts).
  [[nodiscard]] Result<const char*> text_for(std::uint64_t value, std::string copy);
  // ward::releases: `token` (an opaque token or a text) is no longer valid; a text's copy is
  // freed. Nothing happens for a token this table does not hold live.
  void release(std::uint64_t token);
  [[nodiscard]] std::size_t texts() const;

 private:
  struct Entry {
    std::uint64_t value;
    HandleType type;
    bool adopted;  // a token the host holds from an earlier instance
  };
  [[nodiscard]] Result<std::uint64_t> fresh_token_locked();

  mutable std::mutex mu_;
  std::unordered_map<std::uint64_t, Entry> live_;                      // token -> entry
  std::map<std::pair<std::uint64_t, HandleType>, std::uint64_t> by_value_;  // (value, type) -> token
  std::unordered_set<std::uint64_t> stale_;
  struct Text {
    std::uint64_t value;
    std::shared_ptr<const std::string> copy;  // shared with the tables that inherit it as stale
  };
  std::unordered_map<std::uint64_t, Text> texts_;                                  // its address -> text
  std::unordered_map<std::uint64_t, std::shared_ptr<const std::string>> stale_texts_;  // kept readable
  std::uint64_t random_[32]{};  // getrandom output not used yet, read from the end
  std::size_t random_left_ = 0;
};

}  // namespace ward
