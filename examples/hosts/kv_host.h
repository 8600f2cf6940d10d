// The host side of the kv plugin's services: buffers lent to the extension as handles. Every
// buffer is tracked in the calling domain's handle table, so recovery releases what a failed
// instance held, and `live_buffers` counts what is still out (0 after everything is released).
#pragma once

#include <atomic>
#include <cstring>

#include "interfaces.h"

namespace kvhost {

inline std::atomic<long> live_buffers{0};
inline std::atomic<long> journal_writes{0};

inline std::uint64_t buf_open(std::uint32_t size) {
  ward::Domain* d = ward::Domain::calling();
  if (!d || size > (1u << 20)) return 0;
  auto buf = std::make_shared<KvBuffer>();
  buf->bytes.resize(size);
  auto h = d->handles().grant(buf, ward::rights::read | ward::rights::write, [](KvBuffer&) { --live_buffers; });
  if (!h) {
    // Over its handle quota: the extension exhausted a limit. End it; recovery releases the rest.
    (void)d->record_failure(h.error());
    return 0;
  }
  ++live_buffers;
  return *h;
}

inline long buf_write(std::uint64_t h, std::uint32_t off, const std::uint8_t* data, std::size_t n) {
  ward::Domain* d = ward::Domain::calling();
  if (!d) return -1;
  // The crossing already checked type and rights; the lookup cannot fail for a live handle.
  auto buf = d->handles().lookup<KvBuffer>(h, ward::rights::write);
  if (!buf) return -1;
  auto& bytes = (*buf)->bytes;
  if (off > bytes.size() || n > bytes.size() - off) return -1;
  std::memcpy(bytes.data() + off, data, n);
  ++journal_writes;
  return static_cast<long>(n);
}

inline int buf_close(std::uint64_t h) {
  ward::Domain* d = ward::Domain::calling();
  return d && d->handles().close(h) ? 0 : -1;
}

inline void log(const char*) {}

inline constexpr kv_host table{buf_open, buf_write, buf_close, log};

}  // namespace kvhost
