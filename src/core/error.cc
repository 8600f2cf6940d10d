#include "ward/core/error.h"

#include <cstring>

namespace ward {

std::string_view to_string(Errc kind) noexcept {
  switch (kind) {
    case Errc::crashed: return "crashed";
    case Errc::exited: return "exited";
    case Errc::hung: return "hung";
    case Errc::violation: return "violated policy";
    case Errc::limit: return "exhausted a limit";
    case Errc::bad_data: return "returned bad data";
    case Errc::load_failed: return "failed to load";
    case Errc::misuse: return "host misuse";
  }
  return "unknown";
}

std::string errno_text(std::string_view what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

std::string Error::message() const {
  std::string m = plugin.empty() ? std::string("ward") : plugin;
  if (!function.empty()) m += " (" + function + ")";
  m += ": ";
  m += to_string(kind);
  if (!detail.empty()) m += ": " + detail;
  if (earlier) m += " [the domain had already failed]";
  return m;
}

}  // namespace ward
