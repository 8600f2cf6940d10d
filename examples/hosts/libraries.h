// WARD_LIBRARY declarations for libraries of free functions that the tests and `ward bench lib`
// load unmodified. Each names functions of the library's own header; the types come from it.
#pragma once

#include <zstd.h>

#include "freefns.h"
#include "ward/ward.h"

// examples/plugins/freefns.c: a small library of our own (crash injection, a missing symbol).
WARD_LIBRARY(freefns_lib,
             (freefns_add, ward::idempotent),
             (freefns_sum, ward::in(0, 1), ward::idempotent),
             (freefns_fill, ward::out(0, 1), ward::idempotent),
             (freefns_crash));

// zstd's one-shot API, from Debian's libzstd: capacities and sizes as parameters.
WARD_LIBRARY(zstd_oneshot,
             (ZSTD_versionNumber, ward::idempotent),
             (ZSTD_compressBound, ward::idempotent),
             (ZSTD_isError, ward::idempotent),
             (ZSTD_getErrorName, ward::returns_string, ward::idempotent),
             (ZSTD_compress, ward::out(0, 1), ward::in(2, 3), ward::idempotent),
             (ZSTD_decompress, ward::out(0, 1), ward::in(2, 3), ward::idempotent));
