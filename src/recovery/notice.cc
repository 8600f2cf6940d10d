#include "ward/recovery/notice.h"

namespace ward {

std::string_view to_string(NoticeKind k) noexcept {
  switch (k) {
    case NoticeKind::failed: return "failed";
    case NoticeKind::released: return "released";
    case NoticeKind::restarted: return "restarted";
    case NoticeKind::restart_failed: return "restart failed";
    case NoticeKind::retried: return "retried";
    case NoticeKind::error_to_caller: return "error to caller";
    case NoticeKind::disabled: return "disabled";
    case NoticeKind::reset: return "reset";
    case NoticeKind::callbacks_diverged: return "callbacks diverged";
  }
  return "unknown";
}

}  // namespace ward
