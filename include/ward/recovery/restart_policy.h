// RestartPolicy: when the supervisor stops restarting an extension, how long it backs off
// between attempts and whether a heartbeat watches an idle one. What each limit means for the
// host's callers is supervisor.h's file comment; the recovery core enforces it.
#pragma once

#include <chrono>

#include "ward/recovery/checkpoint.h"

namespace ward {

struct RestartPolicy {
  // At most this many restarts without `window` of healthy running in between (a streak).
  unsigned max_restarts = 5;
  std::chrono::milliseconds window{std::chrono::seconds(10)};
  // Budget of one failure's recovery (every attempt and backoff), from detection; past it the
  // extension is disabled. Make it longer than the replay of the log takes.
  std::chrono::milliseconds recovery_timeout{std::chrono::seconds(10)};
  // Backoff before the 2nd and later restarts of a streak, doubling up to backoff_max; never
  // past the recovery's budget.
  std::chrono::milliseconds backoff_initial{0};
  std::chrono::milliseconds backoff_max{std::chrono::milliseconds(200)};
  std::chrono::milliseconds heartbeat{0};  // 0: no heartbeat
  std::chrono::milliseconds heartbeat_timeout{std::chrono::milliseconds(500)};
  // Checkpoints of the extension's state, so a recovery replays only the calls since the last
  // one (checkpoint.h). Off by default.
  CheckpointPolicy checkpoint{};
};

}  // namespace ward
