// Finding a shared library by file name, as the dynamic loader would, without loading it.
//
// A library of free functions is named the way a C program links it ("libzstd.so.1"). The
// child must be handed an absolute path (the sandbox arms itself when exactly that object is
// mapped), and the host must not dlopen the library itself to learn it: that would run the
// library's constructors in the host. So the host searches, in the loader's order (ld.so(8)):
// the directories in LD_LIBRARY_PATH, those listed in /etc/ld.so.conf (following its `include`
// lines), then the default directories. A name with a '/' is taken as a path.
//
// Valid results: an absolute path to a regular, readable file. Errors: load_failed naming every
// directory searched.
#pragma once

#include <string>
#include <vector>

#include "ward/core/error.h"

namespace ward {

[[nodiscard]] Result<std::string> find_library(const std::string& name);

// The directories find_library searches, in order (for messages and tests).
[[nodiscard]] std::vector<std::string> library_search_path();

}  // namespace ward
