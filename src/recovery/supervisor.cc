#include "ward/recovery/supervisor.h"

namespace ward {

std::string_view to_string(EventKind k) noexcept {
  switch (k) {
    case EventKind::failed: return "failed";
    case EventKind::released: return "released";
    case EventKind::restarted: return "restarted";
    case EventKind::restart_failed: return "restart failed";
    case EventKind::retried: return "retried";
    case EventKind::error_to_caller: return "error to caller";
    case EventKind::disabled: return "disabled";
    case EventKind::reset: return "reset";
  }
  return "unknown";
}

}  // namespace ward
