// The per-opcode table; the contract is in protocol.h. Layouts are linux/fuse.h's (protocol 7.x);
// where a field moved with the protocol minor, name_offset says so.
#include "fuse/protocol.h"

#include <array>

namespace ward::fuse::detail {
namespace {

constexpr std::int16_t off(std::size_t v) { return static_cast<std::int16_t>(v); }

// One row per opcode ward relays. Columns: name, reply body, restart rule, name tracking, whether
// `--journal` keeps it (it changes the file system or binds an id the kernel holds), then
// (has_node, fh offset, fh-present flag offset and bit, second nodeid, second fh, fixed bytes
// before the first name).
struct Row {
  std::uint32_t code;
  OpInfo info;
};

constexpr Row kOps[] = {
    Row{FUSE_LOOKUP, OpInfo{"LOOKUP", Body::entry, Retry::again, Names::lookup, true}},
    Row{FUSE_FORGET, OpInfo{"FORGET", Body::none, Retry::never, Names::none, false}},
    Row{FUSE_GETATTR,
              OpInfo{"GETATTR", Body::attr, Retry::again, Names::none, false, true,
                     off(offsetof(fuse_getattr_in, fh)), 0, FUSE_GETATTR_FH}},
    Row{FUSE_SETATTR,
              OpInfo{"SETATTR", Body::attr, Retry::again, Names::none, true, true,
                     off(offsetof(fuse_setattr_in, fh)), 0, FATTR_FH}},
    Row{FUSE_READLINK, OpInfo{"READLINK", Body::readlink, Retry::again, Names::none, false}},
    Row{FUSE_SYMLINK, OpInfo{"SYMLINK", Body::entry, Retry::exists_done, Names::symlink, true}},
    Row{FUSE_MKNOD, OpInfo{"MKNOD", Body::entry, Retry::exists_done, Names::create, true, true, -1,
                                 -1, 0, -1, -1, sizeof(fuse_mknod_in)}},
    Row{FUSE_MKDIR, OpInfo{"MKDIR", Body::entry, Retry::exists_done, Names::create, true, true, -1,
                                 -1, 0, -1, -1, sizeof(fuse_mkdir_in)}},
    Row{FUSE_UNLINK, OpInfo{"UNLINK", Body::empty, Retry::missing_done, Names::remove, true}},
    Row{FUSE_RMDIR, OpInfo{"RMDIR", Body::empty, Retry::missing_done, Names::remove, true}},
    Row{FUSE_RENAME, OpInfo{"RENAME", Body::empty, Retry::missing_done, Names::rename, true, true,
                                  -1, -1, 0, 0, -1, sizeof(fuse_rename_in)}},
    Row{FUSE_LINK, OpInfo{"LINK", Body::entry, Retry::exists_done, Names::create, true, true, -1,
                                -1, 0, 0, -1, sizeof(fuse_link_in)}},
    Row{FUSE_OPEN, OpInfo{"OPEN", Body::open, Retry::again, Names::none, true}},
    Row{FUSE_READ, OpInfo{"READ", Body::up_to_size, Retry::again, Names::none, false, true, 0}},
    Row{FUSE_WRITE, OpInfo{"WRITE", Body::write, Retry::again, Names::none, true, true, 0}},
    Row{FUSE_STATFS, OpInfo{"STATFS", Body::statfs, Retry::again, Names::none, false}},
    Row{FUSE_RELEASE, OpInfo{"RELEASE", Body::empty, Retry::release, Names::none, true, true, 0}},
    Row{FUSE_FSYNC, OpInfo{"FSYNC", Body::empty, Retry::again, Names::none, true, true, 0}},
    // XATTR_CREATE makes a second SETXATTR fail with EEXIST; without it a retry just succeeds.
    Row{FUSE_SETXATTR, OpInfo{"SETXATTR", Body::empty, Retry::exists_done, Names::none, true}},
    Row{FUSE_GETXATTR, OpInfo{"GETXATTR", Body::xattr, Retry::again, Names::none, false}},
    Row{FUSE_LISTXATTR, OpInfo{"LISTXATTR", Body::xattr, Retry::again, Names::none, false}},
    Row{FUSE_REMOVEXATTR,
              OpInfo{"REMOVEXATTR", Body::empty, Retry::missing_done, Names::none, true}},
    Row{FUSE_FLUSH, OpInfo{"FLUSH", Body::empty, Retry::again, Names::none, true, true, 0}},
    Row{FUSE_INIT, OpInfo{"INIT", Body::init, Retry::never, Names::none, false, false}},
    Row{FUSE_OPENDIR, OpInfo{"OPENDIR", Body::open, Retry::again, Names::none, false}},
    Row{FUSE_READDIR, OpInfo{"READDIR", Body::up_to_size, Retry::again, Names::none, false, true, 0}},
    Row{FUSE_RELEASEDIR,
              OpInfo{"RELEASEDIR", Body::empty, Retry::release, Names::none, false, true, 0}},
    Row{FUSE_FSYNCDIR, OpInfo{"FSYNCDIR", Body::empty, Retry::again, Names::none, false, true, 0}},
    Row{FUSE_GETLK, OpInfo{"GETLK", Body::lk, Retry::again, Names::none, false, true, 0}},
    // Locks live in the file system's memory and die with it: a lock request cannot be re-issued
    // as if nothing happened.
    Row{FUSE_SETLK, OpInfo{"SETLK", Body::empty, Retry::never, Names::none, false, true, 0}},
    Row{FUSE_SETLKW, OpInfo{"SETLKW", Body::empty, Retry::never, Names::none, false, true, 0}},
    Row{FUSE_ACCESS, OpInfo{"ACCESS", Body::empty, Retry::again, Names::none, false}},
    Row{FUSE_CREATE, OpInfo{"CREATE", Body::create, Retry::exists_done, Names::create, true, true,
                                  -1, -1, 0, -1, -1, sizeof(fuse_create_in)}},
    Row{FUSE_INTERRUPT, OpInfo{"INTERRUPT", Body::none, Retry::never, Names::none, false, false}},
    Row{FUSE_BMAP, OpInfo{"BMAP", Body::bmap, Retry::again, Names::none, false}},
    Row{FUSE_DESTROY, OpInfo{"DESTROY", Body::empty, Retry::never, Names::none, false, false}},
    // An ioctl's effect is whatever the file system says it is.
    Row{FUSE_IOCTL, OpInfo{"IOCTL", Body::any, Retry::never, Names::none, false, true, 0}},
    Row{FUSE_POLL, OpInfo{"POLL", Body::poll, Retry::again, Names::none, false, true, 0}},
    Row{FUSE_NOTIFY_REPLY, OpInfo{"NOTIFY_REPLY", Body::none, Retry::never, Names::none, false}},
    Row{FUSE_BATCH_FORGET,
              OpInfo{"BATCH_FORGET", Body::none, Retry::never, Names::none, false, false}},
    Row{FUSE_FALLOCATE,
              OpInfo{"FALLOCATE", Body::empty, Retry::again, Names::none, true, true, 0}},
    Row{FUSE_READDIRPLUS,
              OpInfo{"READDIRPLUS", Body::direntplus, Retry::again, Names::none, false, true, 0}},
    Row{FUSE_RENAME2, OpInfo{"RENAME2", Body::empty, Retry::missing_done, Names::rename, true,
                                   true, -1, -1, 0, 0, -1, sizeof(fuse_rename2_in)}},
    Row{FUSE_LSEEK, OpInfo{"LSEEK", Body::lseek, Retry::again, Names::none, false, true, 0}},
    Row{FUSE_COPY_FILE_RANGE,
              OpInfo{"COPY_FILE_RANGE", Body::write, Retry::again, Names::none, true, true,
                     off(offsetof(fuse_copy_file_range_in, fh_in)), -1, 0,
                     off(offsetof(fuse_copy_file_range_in, nodeid_out)),
                     off(offsetof(fuse_copy_file_range_in, fh_out))}},
    Row{FUSE_SYNCFS, OpInfo{"SYNCFS", Body::empty, Retry::again, Names::none, false}},
    // fuse_statx_in starts like fuse_getattr_in (getattr_flags, reserved, fh).
    Row{kOpStatx, OpInfo{"STATX", Body::statx, Retry::again, Names::none, false, true, 8, 0,
                               FUSE_GETATTR_FH}},
};

constexpr std::size_t kMaxOpcode = 64;

constexpr std::array<const OpInfo*, kMaxOpcode> index_ops() {
  std::array<const OpInfo*, kMaxOpcode> t{};
  for (const Row& r : kOps) t[r.code] = &r.info;
  return t;
}
constexpr auto kIndex = index_ops();

// fuse_statx_out: attr_valid (8) + attr_valid_nsec, flags (8) + spare[2] (16) + fuse_statx (256).
constexpr std::size_t kStatxOutSize = 288;

}  // namespace

const OpInfo* op_info(std::uint32_t opcode) { return opcode < kMaxOpcode ? kIndex[opcode] : nullptr; }

std::size_t name_offset(const OpInfo& op, std::uint32_t opcode, std::uint32_t minor) {
  if (minor < 12 && opcode == FUSE_MKNOD) return 8;                        // FUSE_COMPAT_MKNOD_IN_SIZE
  if (minor < 12 && opcode == FUSE_CREATE) return sizeof(fuse_open_in);
  return op.fixed;
}

std::uint32_t asked_size(std::uint32_t opcode, const char* body, std::size_t len) {
  switch (opcode) {
    case FUSE_READ:
    case FUSE_READDIR:
    case FUSE_READDIRPLUS:
      return len >= sizeof(fuse_read_in) ? reinterpret_cast<const fuse_read_in*>(body)->size : 0;
    case FUSE_GETXATTR:
    case FUSE_LISTXATTR:
      return len >= sizeof(fuse_getxattr_in) ? reinterpret_cast<const fuse_getxattr_in*>(body)->size : 0;
    default:
      return 0;
  }
}

bool body_size_ok(Body body, std::uint32_t asked, std::size_t n, std::size_t max_write) {
  switch (body) {
    case Body::none: return false;  // nothing may answer these
    case Body::empty: return n == 0;
    case Body::entry: return n == sizeof(fuse_entry_out);
    case Body::attr: return n == sizeof(fuse_attr_out);
    case Body::open: return n == sizeof(fuse_open_out);
    case Body::create: return n == sizeof(fuse_entry_out) + sizeof(fuse_open_out);
    case Body::write: return n == sizeof(fuse_write_out);
    case Body::statfs: return n == sizeof(fuse_statfs_out);
    case Body::init: return n >= 8 && n <= sizeof(fuse_init_out);  // older minors: a prefix
    case Body::up_to_size:
    case Body::direntplus: return n <= asked;
    case Body::readlink: return n <= 4096;
    case Body::xattr: return asked == 0 ? n == sizeof(fuse_getxattr_out) : n <= asked;
    case Body::lk: return n == sizeof(fuse_lk_out);
    case Body::bmap: return n == sizeof(fuse_bmap_out);
    case Body::lseek: return n == sizeof(fuse_lseek_out);
    case Body::poll: return n == sizeof(fuse_poll_out);
    case Body::statx: return n == kStatxOutSize;
    case Body::any: return n <= max_write;
  }
  return false;
}

}  // namespace ward::fuse::detail
