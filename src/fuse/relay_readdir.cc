// The FUSE relay's directory listings: READDIRPLUS entries given ward's node ids, what the kernel
// was given from each directory handle, and after a restart the rest of a listing the kernel was
// part way through, served by ward from the new instance's listing minus what the kernel consumed
// (a READDIR offset is the file system's own cookie, meaningless to a new instance; docs/fuse.md,
// "Restart"). relay_impl.h has the class's contract.
#include <sys/stat.h>

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <unordered_set>

#include "fuse/relay_impl.h"

namespace ward::fuse::detail {

namespace {

// Walks the entries of a READDIR (plus = false) or READDIRPLUS body, calling fn(where the entry
// starts in the body, its fuse_dirent, its name) for each in order; false at the first malformed
// one.
template <typename Fn>
bool walk_dirents(const char* body, std::size_t n, bool plus, Fn fn) {
  std::size_t head = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
  std::size_t dirent_at = plus ? offsetof(fuse_direntplus, dirent) : 0;
  for (std::size_t at = 0; at < n;) {
    if (n - at < head) return false;
    auto d = load<fuse_dirent>(body + at + dirent_at);
    std::size_t size = FUSE_DIRENT_ALIGN(head + d.namelen);
    if (d.namelen == 0 || d.namelen > 1024 || size > n - at) return false;
    fn(at, d, std::string_view(body + at + head, d.namelen));
    at += size;
  }
  return true;
}

// The same, each entry as a DirEntry.
template <typename Fn>
bool each_dirent(const char* body, std::size_t n, bool plus, Fn fn) {
  return walk_dirents(body, n, plus, [&](std::size_t, const fuse_dirent& d, std::string_view name) {
    DirEntry e;
    e.off = d.off, e.ino = d.ino, e.type = d.type;
    e.name = name;
    fn(std::move(e));
  });
}

}  // namespace

// READDIRPLUS carries an entry per name: each becomes ward's like a LOOKUP's. "." and ".." are
// not counted by the kernel, so ward gives them no node id at all (the kernel then skips them).
bool Relay::direntplus_reply(const InFlight& r, char* body, std::size_t n) {
  constexpr std::size_t kIno = offsetof(fuse_direntplus, dirent) + offsetof(fuse_dirent, ino);
  return walk_dirents(body, n, true, [&](std::size_t at, const fuse_dirent& d, std::string_view name) {
    auto e = load<fuse_entry_out>(body + at);  // fuse_direntplus starts with it
    if (e.nodeid == 0 || name == "." || name == "..") {
      e.nodeid = 0;
      store(body + at, e);
      store(body + at + kIno, inos_.show(d.ino));
      return;
    }
    std::uint64_t id = nodes_.entry(e.nodeid, r.ids.node, name, e.generation, e.attr.mode & S_IFMT);
    journal_lookup(r.ids.node, name, id);
    e.nodeid = id;
    e.generation = nodes_.find(id)->generation;
    std::uint64_t fs_ino = e.attr.ino;
    e.attr.ino = node_ino(id, fs_ino);
    store(body + at, e);
    // The entry's number is its node's when the file system gave both the same (inos.h).
    store(body + at + kIno, d.ino == fs_ino ? e.attr.ino : inos_.show(d.ino));
  });
}

// READDIR entries' inode numbers: the ones ward shows (inos.h).
void Relay::dirent_inos(char* body, std::size_t n) {
  (void)walk_dirents(body, n, false, [&](std::size_t at, const fuse_dirent& d, std::string_view) {
    store(body + at + offsetof(fuse_dirent, ino), inos_.show(d.ino));
  });
}

// Hidden names (relay_hidden.cc) out of a READDIR/READDIRPLUS reply body, in place; returns the
// body's new size. A READDIRPLUS entry dropped had counted a lookup in the file system: forgotten
// again. `last_off`: the offset of the reply's last entry (to ask on from when nothing is left).
// A malformed body is left as it is, for deliver() to judge.
std::size_t Relay::drop_hidden(bool plus, char* body, std::size_t n, std::uint64_t& last_off) {
  bool any = false;
  if (!walk_dirents(body, n, plus, [&](std::size_t, const fuse_dirent& d, std::string_view name) {
        any = any || hidden_name(name);
        last_off = d.off;
      }) || !any)
    return n;
  std::size_t head = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET, out = 0;
  // Entries move towards the start only, and each is read before anything is written over it.
  (void)walk_dirents(body, n, plus, [&](std::size_t at, const fuse_dirent& d, std::string_view name) {
    std::size_t size = FUSE_DIRENT_ALIGN(head + d.namelen);
    if (hidden_name(name)) {
      if (auto e = load<fuse_entry_out>(body + at); plus && e.nodeid != 0) forget_in_fs(e.nodeid, 1);
      return;
    }
    if (out != at) std::memmove(body + out, body + at, size);
    out += size;
  });
  return out;
}

// A directory handle reopened by a restart after the kernel had read part of its listing: ward
// serves the rest itself (resumed_listing).
Result<void> Relay::resume_listing(Handle& h) {
  if (h.listed.empty()) return {};
  h.resume = true, h.rest_loaded = false;
  return fetch_listing(h);
}

// During a restart: the new instance's whole listing of `h` (READDIR from offset 0 to the end,
// bounded), into h.rest; resume is off when the file system will not list it.
Result<void> Relay::fetch_listing(Handle& h) {
  h.rest.clear();
  Node* node = nodes_.find(h.node);
  if (!node || node->fs == 0) return h.resume = false, Result<void>{};
  constexpr std::size_t kMaxEntries = 1u << 22;  // a hostile listing must not eat ward's memory
  std::uint64_t next = 0;
  for (;;) {
    fuse_read_in rd{};
    rd.fh = h.fs;
    rd.offset = next;
    rd.size = 64 * 1024;
    auto reply = WARD_TRY(call(message(FUSE_READDIR, ward_unique(), node->fs, &rd, sizeof rd), o_.request_timeout));
    auto oh = load<fuse_out_header>(reply.data());
    std::size_t body = reply.size() - sizeof oh;
    if (oh.error != 0) return h.resume = false, h.rest.clear(), Result<void>{};
    if (body == 0) return {};
    std::uint64_t before = next;
    bool ok = each_dirent(reply.data() + sizeof oh, body, false, [&](DirEntry e) {
      next = e.off;
      if (!hidden_name(e.name)) h.rest.push_back(std::move(e));
    });
    if (!ok || next == before || h.rest.size() > kMaxEntries)
      return fail(Errc::violation, "the restarted file system's listing of a directory does not end");
  }
}

// What the kernel was given from a directory handle (for a resume after a restart).
void Relay::record_listing(const InFlight& r, const char* body, std::size_t n) {
  Handle* h = r.ids.has_fh ? handles_.find(r.ids.fh) : nullptr;
  if (!h) return;
  auto in = load<fuse_read_in>(r.msg.data() + sizeof(fuse_in_header));
  if (in.offset == 0) h->listed.clear();
  (void)each_dirent(body, n, r.opcode == FUSE_READDIRPLUS,
                    [&](DirEntry e) { h->listed.push_back(std::move(e)); });
}

// A READDIR/READDIRPLUS on a handle the file system was restarted under mid-listing: ward
// answers it from the new instance's listing minus what the kernel consumed before. Returns
// false when the request is not one of those (or cannot be: then it goes to the file system
// as is, with the file system's own offsets).
Result<bool> Relay::resumed_listing(std::uint64_t unique, const InFlight& r, const char* msg, std::size_t len) {
  std::uint32_t opcode = r.opcode;
  if ((opcode != FUSE_READDIR && opcode != FUSE_READDIRPLUS) || !r.ids.has_fh ||
      len < sizeof(fuse_in_header) + sizeof(fuse_read_in))
    return false;
  auto in = load<fuse_read_in>(msg + sizeof(fuse_in_header));  // offset and size: never translated
  Handle* h = handles_.find(r.ids.fh);
  if (!h || !h->resume || h->stale) return false;
  if (in.offset == 0) {  // rewinddir: the new instance's listing from the start
    h->resume = false, h->listed.clear(), h->rest.clear();
    return false;
  }
  if (!h->rest_loaded) {
    // The kernel consumed the entries up to the one whose offset it now asks from; `rest`
    // holds the new instance's whole listing, fetched during the restart.
    std::vector<DirEntry> remaining;
    auto upto = std::find_if(h->listed.begin(), h->listed.end(),
                             [&](const DirEntry& e) { return e.off == in.offset; });
    if (upto == h->listed.end()) {
      h->resume = false;
      return false;
    }
    std::unordered_set<std::string> consumed;
    for (auto it = h->listed.begin(); it != std::next(upto); ++it) consumed.insert(it->name);
    for (auto& e : h->rest)
      if (!consumed.contains(e.name)) remaining.push_back(std::move(e));
    h->rest = std::move(remaining);
    remaining.clear();
    h->rest_loaded = true;
  }
  // Ward's offsets: kCookie + the index of the next entry to give.
  std::size_t i = in.offset >= kCookie ? static_cast<std::size_t>(in.offset - kCookie) : 0;
  bool plus = opcode == FUSE_READDIRPLUS;
  std::size_t head = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
  std::vector<char> out(sizeof(fuse_out_header));
  for (; i < h->rest.size(); ++i) {
    const auto& e = h->rest[i];
    std::size_t size = FUSE_DIRENT_ALIGN(head + e.name.size());
    if (out.size() - sizeof(fuse_out_header) + size > in.size) break;
    std::size_t at = out.size();
    out.resize(at + size, 0);
    fuse_dirent d{};
    d.ino = inos_.show(e.ino), d.off = kCookie + i + 1, d.namelen = static_cast<std::uint32_t>(e.name.size()), d.type = e.type;
    // READDIRPLUS: no entry (node id 0): the kernel lists the name and looks it up when asked.
    std::memcpy(out.data() + at + (plus ? offsetof(fuse_direntplus, dirent) : 0), &d, sizeof d);
    std::memcpy(out.data() + at + head, e.name.data(), e.name.size());
    // Listed under ward's offset: a restart during this resume starts from here.
    DirEntry given = e;
    given.off = d.off, given.ino = d.ino;
    h->listed.push_back(std::move(given));
  }
  fuse_out_header oh{};
  oh.len = static_cast<std::uint32_t>(out.size());
  oh.unique = unique;
  store(out.data(), oh);
  WARD_TRY(to_kernel(out.data(), out.size()));
  ++stats_.answered_by_ward;
  return true;
}

}  // namespace ward::fuse::detail
