// Aborting a FUSE connection through the FUSE control file system (fusectl, Documentation/
// filesystems/fuse.rst in the kernel): every request waiting on it ends with ECONNABORTED.
//
// Why. The last resort when nothing else can end a wait the kernel holds: a notification the
// kernel keeps waiting for a lock that a request of an unserved connection holds (notifier.h),
// and tests that must leave no mount behind even when ward itself is stuck in the kernel.
//
// Contract. `connection` is the mount's device, "MAJOR:MINOR" as mountinfo gives it (major 0: an
// anonymous device; fusectl names the connection by its minor). Writes to fusectl's
// N/abort: through /sys/fs/fuse/connections when fusectl is mounted there, else by mounting
// fusectl on a private temporary directory for the write and removing it again. Needs root.
// Errors: the device is not one fusectl names, no such connection (already gone), or the mount or
// write failed; each in words.
#pragma once

#include <string>

#include "ward/core/error.h"

namespace ward::fuse::detail {

Result<void> abort_connection(const std::string& connection);

// The device ("MAJOR:MINOR") of the FUSE mount at `mountpoint` (absolute, as mountinfo shows it),
// the last such mount there; "" when there is none.
std::string fuse_connection_at(const std::string& mountpoint);

}  // namespace ward::fuse::detail
