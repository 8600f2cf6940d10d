// What ward knows about each FUSE request: one row per opcode (src/fuse/protocol.cc), read by the
// relay to validate replies, translate ids, track names and decide what a restart may re-issue.
//
// Contract. op_info(opcode) returns the row for every opcode ward relays, or nullptr for one it
// does not know: the relay answers those ENOSYS itself, because it could not translate ids it
// cannot find, and a request it cannot check must not reach the file system. Offsets are into the
// request body (after fuse_in_header). Pure data and pure functions; thread-safe.
#pragma once

#include <linux/fuse.h>

#include <cstddef>
#include <cstdint>

namespace ward::fuse::detail {

// Not in every <linux/fuse.h> (newer kernels send them; the relay must know their layout).
inline constexpr std::uint32_t kOpStatx = 52;
// Fields of a STATX reply (protocol 7.39): fuse_statx_out's fuse_statx starts at 32; in it nlink
// is at 16 and ino at 32.
inline constexpr std::size_t kStatxNlinkAt = 32 + 16;
inline constexpr std::size_t kStatxInoAt = 32 + 32;

// What a successful reply's body must look like.
enum class Body : std::uint8_t {
  none,          // no reply at all (FORGET, BATCH_FORGET, INTERRUPT, NOTIFY_REPLY)
  empty,         // header only
  entry,         // fuse_entry_out: nodeid and generation translated
  attr,          // fuse_attr_out
  open,          // fuse_open_out: fh translated
  create,        // fuse_entry_out + fuse_open_out
  write,         // fuse_write_out
  statfs,        // fuse_statfs_out
  init,          // a prefix of fuse_init_out
  up_to_size,    // at most the size the request asked for (READ, READDIR)
  direntplus,    // at most the asked size; nodeids and generations inside translated
  readlink,      // at most a page
  xattr,         // asked size 0: fuse_getxattr_out; else at most the asked size
  lk,            // fuse_lk_out
  bmap,          // fuse_bmap_out
  lseek,         // fuse_lseek_out
  poll,          // fuse_poll_out
  statx,         // fuse_statx_out (opcode 52)
  any,           // IOCTL: bounded by the buffer only
};

// What a restart does with the request when the file system died holding it (docs/fuse.md,
// "Requests in flight at a crash").
enum class Retry : std::uint8_t {
  again,         // idempotent: sent again to the new instance
  exists_done,   // creates a name: sent again; EEXIST means the first attempt did it
  missing_done,  // removes a name: sent again; ENOENT means the first attempt did it
  never,         // answered EIO (the first attempt may or may not have happened)
  release,       // RELEASE/RELEASEDIR: answered 0; the handle is dropped
};

// What the request does to ward's name table when it succeeds.
enum class Names : std::uint8_t {
  none,
  lookup,  // LOOKUP: name at the body's start
  create,  // MKNOD/MKDIR/CREATE/LINK: name after the fixed part
  symlink, // name first, then the link target
  remove,  // UNLINK/RMDIR: name at the start
  rename,  // RENAME/RENAME2: newdir at 0; old name and new name after the fixed part
};

struct OpInfo {
  const char* name;
  Body body;
  Retry retry;
  Names names;
  // `--journal` keeps it once it succeeded: it changes the file system's state, or binds a node
  // id or file handle the kernel holds (docs/fuse.md, "Journal").
  bool journal = false;
  bool has_node = true;     // the header's nodeid is one of ward's ids (translated)
  std::int16_t fh_at = -1;  // offset of a file handle (translated), -1 none
  std::int16_t fh_flag_at = -1;   // fh present only if this u32 has fh_flag set (-1: always)
  std::uint32_t fh_flag = 0;
  std::int16_t node_at = -1;      // offset of a second nodeid (RENAME newdir, LINK oldnodeid)
  std::int16_t fh2_at = -1;       // COPY_FILE_RANGE fh_out
  std::uint16_t fixed = 0;        // bytes before the first name (minor >= 12 layouts)
};

[[nodiscard]] const OpInfo* op_info(std::uint32_t opcode);

// Bytes before the first name of `opcode`'s body for a connection of protocol `minor`
// (MKNOD and CREATE were shorter before 7.12).
[[nodiscard]] std::size_t name_offset(const OpInfo& op, std::uint32_t opcode, std::uint32_t minor);

// The size the kernel asked for (READ/READDIR/READDIRPLUS/GETXATTR/LISTXATTR), else 0.
[[nodiscard]] std::uint32_t asked_size(std::uint32_t opcode, const char* body, std::size_t len);

// Whether a successful reply body of `n` bytes fits what `op` allows for a request that asked
// for `asked` bytes.
[[nodiscard]] bool body_size_ok(Body body, std::uint32_t asked, std::size_t n, std::size_t max_write);

}  // namespace ward::fuse::detail
