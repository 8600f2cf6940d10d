// WARD_INTERFACE declarations for the example plugins' C ABIs. The plugins include none of
// this: the declarations live with the host, one per ABI, and produce the stubs for both
// directions.
#pragma once

#include "checksum.h"
#include "device.h"
#include "probe.h"
#include "textxform.h"
#include "ward/ward.h"

WARD_INTERFACE(text_host, (log, ward::cstring(0)));
WARD_INTERFACE(textxform_api,
               (init, ward::services(0), ward::cstring(1), ward::replay_after_restart),
               (transform, ward::cstring(0), ward::out(1, 2), ward::idempotent),
               (count_words, ward::cstring(0), ward::idempotent),
               (mode_name, ward::returns_string, ward::idempotent));

WARD_INTERFACE(device_host, (log, ward::cstring(0)), (now_ns));
WARD_INTERFACE(device_api,
               (init, ward::services(0), ward::replay_after_restart),
               (configure, ward::in(0), ward::replay_after_restart),
               (write, ward::in(1, 2)),
               (read, ward::out(1, 2), ward::idempotent),
               (stats, ward::out(0), ward::idempotent),
               (get_config, ward::idempotent),
               (scale, ward::idempotent),
               (fill, ward::in(1, 2), ward::out(3, 4), ward::idempotent),
               (ping, ward::idempotent),
               (log_echo, ward::cstring(0)));

WARD_INTERFACE(checksum_api,
               (crc32, ward::in(0, 1), ward::idempotent),
               (fnv1a64, ward::in(0, 1), ward::idempotent),
               (block_sums, ward::in(0, 1), ward::out(3, 4), ward::idempotent),
               (fill_pattern, ward::out(0, 1), ward::idempotent),
               (xor_inplace, ward::inout(0, 1)));

WARD_INTERFACE(probe_host, (log, ward::cstring(0)));
WARD_INTERFACE(probe_api,
               (init, ward::services(0), ward::replay_after_restart),
               (run, ward::idempotent),
               (poke, ward::out(0, 1)));

// The key-value plugin: host buffers lent by handle, tables identified by plugin-issued ids.
#include "kv.h"
struct KvBuffer {
  std::vector<std::uint8_t> bytes;
};
WARD_INTERFACE(kv_host,
               (buf_open),
               (buf_write, ward::handle<KvBuffer>(0, ward::rights::write), ward::in(2, 3)),
               (buf_close, ward::handle<KvBuffer>(0)),
               (log, ward::cstring(0)));
WARD_INTERFACE(kv_api,
               (init, ward::services(0), ward::replay_after_restart),
               (open_table, ward::cstring(0), ward::returns_ext_handle, ward::replay_after_restart),
               // The replay log keeps the latest put per (table, key); a del drops it; closing
               // a table drops everything logged for it (recovery/replay_log.h).
               (put, ward::ext_handle(0), ward::in(2, 3), ward::replay_by_key(0, 1)),
               (get, ward::ext_handle(0), ward::out(2, 3), ward::idempotent),
               (count, ward::ext_handle(0), ward::idempotent),
               (inject),
               (ping, ward::idempotent),
               (del, ward::ext_handle(0), ward::cancels<&kv_api::put>(0, 1)),
               (close_table, ward::ext_handle(0), ward::releases(0)));

// The calling-convention zoo (tests and benchmarks).
#include "abi_zoo.h"
struct ZooObject {
  int value = 0;
};
// color comes from a C header (no fixed underlying type): only its enumerators' range is valid.
template <>
struct ward::enum_range<color> {
  static constexpr color min = RED, max = BLUE;
};
WARD_INTERFACE(zoo_host, (mirror), (fill, ward::out(0, 1)), (avg, ward::in(0, 1)),
               (greet, ward::cstring(0), ward::returns_string), (twice));
WARD_INTERFACE(zoo_api, (add_vec), (mix), (dmix), (scale_big), (neg_u8), (half), (is_even), (next_color), (many),
               (name_of, ward::returns_string), (use_host, ward::services(0)),
               (take_handle, ward::handle<ZooObject>(0, ward::rights::read)), (take_plain));

// The packet filter (SPIN's classic extension).
#include "pktfilter.h"
WARD_INTERFACE(pkt_host, (log, ward::cstring(0)));
WARD_INTERFACE(pktfilter_api,
               (init, ward::services(0), ward::replay_after_restart),
               (on_packet, ward::in(0), ward::in(1, 2), ward::nullable(1)),
               (wants, ward::idempotent),
               (seen, ward::idempotent),
               (dropped, ward::idempotent),
               (crash_next));
