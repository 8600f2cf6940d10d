// Recovery notices: what the supervisor tells the host about each step of a recovery (a failure
// found, objects released, an instance restarted, the extension disabled, ...). They are handed
// to the NoticeSink given to the Supervisor, on the thread that took the step and outside the
// supervisor's locks (supervisor.h says what that sink may and may not do).
// Not to be confused with ward::Event (events/event.h), the SPIN event dispatcher.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "ward/core/error.h"

namespace ward {

enum class NoticeKind : std::uint8_t {
  failed,           // a failure was detected (cause)
  released,         // the failed instance's host objects were released (count)
  restarted,        // a fresh instance runs and its state was replayed (count = calls replayed)
  restart_failed,   // starting or replaying failed (cause); another attempt follows if allowed
  retried,          // an idempotent call was retried after recovery
  error_to_caller,  // a non-idempotent call failed; its caller got the error
  disabled,         // recovery gave up (cause says why): calls fail fast until reset()
  reset,            // the host re-enabled the extension
  // A retried or replayed call's callbacks differed from those its earlier run delivered
  // (iface/callback_journal.h): from there on they were delivered. count: callbacks answered from
  // the record before that; cause (bad_data): the function and where it differed.
  callbacks_diverged,
};
[[nodiscard]] std::string_view to_string(NoticeKind k) noexcept;

struct RecoveryNotice {
  NoticeKind kind;
  std::string extension;
  Error cause;                        // failed, restart_failed, error_to_caller, disabled, callbacks_diverged
  std::size_t count = 0;              // released: objects; restarted: calls replayed; callbacks_diverged: see above
  std::chrono::nanoseconds elapsed{}; // restarted: from detection to the fresh instance ready
  unsigned restarts_in_streak = 0;    // restarts since the extension last ran healthily
};

using NoticeSink = std::function<void(const RecoveryNotice&)>;

}  // namespace ward
