// Waiting for one descriptor to become readable, within a deadline that nothing on the other end
// can move.
#pragma once

#include <poll.h>

#include <cerrno>
#include <chrono>

namespace ward {

// True once `fd` is readable, at its end, or in error (POLLIN, POLLHUP, POLLERR) within `limit`;
// false when the time runs out first or poll(2) fails. An interrupted wait goes on with what is
// left of the time.
inline bool readable_within(int fd, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    const int r = left > 0 ? ::poll(&p, 1, static_cast<int>(left)) : 0;
    if (r < 0 && errno == EINTR) continue;
    return r == 1;
  }
}

}  // namespace ward
