// zstd (Debian's libzstd.so.1, unmodified) declared for ward: everything below names functions of
// zstd's own header, so a declaration cannot drift from the library's types.
//
// Two libraries, because the two kinds of context need opposite recovery rules:
//  - zstd_api: the one-shot calls and *long-lived* contexts. Creating a context and setting its
//    parameters are ward::replay_after_restart, so under a Supervisor a context token keeps
//    working after a restart (a fresh context with the same parameters stands behind it); every
//    compression and decompression call is a whole frame, so ward::idempotent: a call the
//    restart interrupted is sent again, transparently.
//  - zstd_stream_api: streams. A stream's state (the frame half written, the window) lives in
//    the library's own heap and dies with the child; replaying the context's creation would hand
//    the host a fresh context in the middle of a frame and the output would be silently wrong.
//    So nothing here is replayed: after a restart every stream token is stale, the next call on
//    it fails (misuse, "since been restarted"), and the host starts the stream over
//    (zstd_stream.h). ZSTD_CCtx_setParameter is declared in both with the rule of its library.
// Open each with Instance<...>::open("libzstd.so.1", policy) or Supervisor::open<...>.
#pragma once

#include <zstd.h>

#include "ward/ward.h"

// C enums from zstd.h cross into the library; ward checks values against these ranges.
template <>
struct ward::enum_range<ZSTD_cParameter> {
  static constexpr ZSTD_cParameter min = ZSTD_c_experimentalParam2;  // 10, the smallest
  static constexpr ZSTD_cParameter max = ZSTD_c_experimentalParam19;  // 1016, the largest
};
template <>
struct ward::enum_range<ZSTD_EndDirective> {
  static constexpr ZSTD_EndDirective min = ZSTD_e_continue;
  static constexpr ZSTD_EndDirective max = ZSTD_e_end;
};

// Out buffers use .filled(ward::result): zstd returns the bytes it produced, or an error code
// (a value above any capacity) in which case nothing is copied back and the code is returned as
// the library's own. Sources may be empty, so they are nullable (an empty vector has no data()).
WARD_LIBRARY(zstd_api,
             (ZSTD_versionNumber, ward::idempotent),
             (ZSTD_compressBound, ward::idempotent),
             (ZSTD_isError, ward::idempotent),
             (ZSTD_getErrorName, ward::returns_string, ward::idempotent),
             (ZSTD_getFrameContentSize, ward::in(0, 1), ward::nullable(0), ward::idempotent),
             (ZSTD_compress, ward::out(0, 1).filled(ward::result), ward::in(2, 3), ward::nullable(0),
              ward::nullable(2), ward::idempotent),
             (ZSTD_decompress, ward::out(0, 1).filled(ward::result), ward::in(2, 3), ward::nullable(0),
              ward::nullable(2), ward::idempotent),
             (ZSTD_createCCtx, ward::returns_opaque, ward::replay_after_restart),
             (ZSTD_freeCCtx, ward::opaque(0)),
             (ZSTD_CCtx_setParameter, ward::opaque(0), ward::replay_after_restart),
             (ZSTD_compressCCtx, ward::opaque(0), ward::out(1, 2).filled(ward::result), ward::in(3, 4),
              ward::nullable(1), ward::nullable(3), ward::idempotent),
             (ZSTD_compress2, ward::opaque(0), ward::out(1, 2).filled(ward::result), ward::in(3, 4),
              ward::nullable(1), ward::nullable(3), ward::idempotent),
             (ZSTD_createDCtx, ward::returns_opaque, ward::replay_after_restart),
             (ZSTD_freeDCtx, ward::opaque(0)),
             (ZSTD_decompressDCtx, ward::opaque(0), ward::out(1, 2).filled(ward::result), ward::in(3, 4),
              ward::nullable(1), ward::nullable(3), ward::idempotent));

// The ZSTD_inBuffer / ZSTD_outBuffer structs hold pointers the library follows and positions it
// advances: they and the data they point to live in sandbox memory (ward::shared), written by the
// host with in_extension() addresses and read back tainted.
WARD_LIBRARY(zstd_stream_api,
             (ZSTD_isError, ward::idempotent),
             (ZSTD_getErrorName, ward::returns_string, ward::idempotent),
             (ZSTD_CStreamInSize, ward::idempotent),
             (ZSTD_CStreamOutSize, ward::idempotent),
             (ZSTD_DStreamOutSize, ward::idempotent),
             (ZSTD_createCStream, ward::returns_opaque),
             (ZSTD_freeCStream, ward::opaque(0)),
             (ZSTD_CCtx_setParameter, ward::opaque(0)),
             (ZSTD_compressStream2, ward::opaque(0), ward::shared(1), ward::shared(2)),
             (ZSTD_createDStream, ward::returns_opaque),
             (ZSTD_freeDStream, ward::opaque(0)),
             (ZSTD_decompressStream, ward::opaque(0), ward::shared(1), ward::shared(2)));
