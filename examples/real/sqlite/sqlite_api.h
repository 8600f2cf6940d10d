// SQLite 3 (Debian's libsqlite3), unmodified, as a ward extension: the declaration the example
// and the tests share. Every entry names a function of <sqlite3.h>, whose types come from there.
//
// Handles: a connection (sqlite3 *) and a statement (sqlite3_stmt *) are opaque pointers; the
// host holds tokens. Strings: SQL in (cstring), column text and names out (returns_string),
// error messages sqlite3_exec allocates (out_text; freed with sqlite3_free, which releases them).
// Rows: sqlite3_exec's callback crosses back into the host (WARD_CALLBACK below).
// Recovery: sqlite3_open and sqlite3_exec are replayed after a restart, so a database built with
// them comes back; prepare, step and bind are not (statements from before a restart are stale).
// Replay is per function: a query run through sqlite3_exec is replayed too, and its callback runs
// again then (with the user data it had, which must still be valid).
#pragma once

#include <sqlite3.h>

#include "ward/ward.h"

// The row callback: user data, column count, values (NULL for SQL NULL) and names.
using sqlite_row_fn = int (*)(void*, int, char**, char**);
WARD_CALLBACK(sqlite_row_fn, ward::user_data(0), ward::strings(2, 1), ward::strings(3, 1));

WARD_LIBRARY(sqlite_lib,
             (sqlite3_libversion_number, ward::idempotent),
             (sqlite3_open, ward::cstring(0), ward::out_opaque(1), ward::replay_after_restart),
             (sqlite3_close, ward::opaque(0), ward::nullable(0), ward::releases(0)),
             (sqlite3_exec, ward::opaque(0), ward::cstring(1), ward::callback(2, 3), ward::nullable(2),
              ward::out_text(4), ward::nullable(4), ward::replay_after_restart),
             (sqlite3_free, ward::opaque(0), ward::nullable(0), ward::releases(0)),
             (sqlite3_errmsg, ward::opaque(0), ward::returns_string, ward::idempotent),
             (sqlite3_errcode, ward::opaque(0), ward::idempotent),
             (sqlite3_changes, ward::opaque(0), ward::idempotent),
             (sqlite3_prepare_v2, ward::opaque(0), ward::cstring(1), ward::out_opaque(3), ward::out_text(4),
              ward::nullable(4)),
             (sqlite3_bind_int64, ward::opaque(0)),
             (sqlite3_bind_double, ward::opaque(0)),
             (sqlite3_bind_null, ward::opaque(0)),
             (sqlite3_bind_text, ward::opaque(0), ward::in(2, 3), ward::nullable(2), ward::sentinel(4)),
             (sqlite3_bind_blob, ward::opaque(0), ward::in(2, 3), ward::nullable(2), ward::sentinel(4)),
             (sqlite3_step, ward::opaque(0)),
             (sqlite3_reset, ward::opaque(0)),
             (sqlite3_column_count, ward::opaque(0), ward::idempotent),
             (sqlite3_column_type, ward::opaque(0), ward::idempotent),
             (sqlite3_column_int64, ward::opaque(0), ward::idempotent),
             (sqlite3_column_double, ward::opaque(0), ward::idempotent),
             (sqlite3_column_text, ward::opaque(0), ward::returns_string, ward::idempotent),
             (sqlite3_column_bytes, ward::opaque(0), ward::idempotent),
             (sqlite3_column_name, ward::opaque(0), ward::returns_string, ward::idempotent),
             (sqlite3_finalize, ward::opaque(0), ward::nullable(0), ward::releases(0)));
