// The whole host-side declaration that runs frei0r video filters (Debian's frei0r-plugins,
// unmodified) as ward extensions. A frei0r plugin is a shared object exporting f0r_* functions.
//
//  - info structs (f0r_plugin_info_t, f0r_param_info_t) are filled by the plugin with pointers to
//    its own strings: deep out-parameters (WARD_STRUCT text fields, iface/deep.h); the host
//    passes `deep.out()` of a ward::Deep<T>.
//  - f0r_construct returns a void * instance: an opaque token (iface/opaque.h); f0r_destruct
//    frees it (ward::releases).
//  - f0r_param_t is a void * whose pointee's type depends on the parameter (double, color,
//    position, char *): the value lives in sandbox memory, passed in place (ward::shared, 16 bytes:
//    the largest type, f0r_param_position_t, checked to lie inside one live allocation),
//    so every type fits, a string one included (a char * in the sandbox pointing to a string in
//    the sandbox). Under a Supervisor set_param_value is replayed with the slot's *current*
//    contents: keep one slot per parameter index (WardFilter in frei0r_test.cc does).
//  - f0r_update carries no frame size (the instance was built with it), so frames are sandbox
//    allocations of width * height pixels passed in place (ward::shared): the plugin reads the
//    input and writes the output where the host wrote and reads them, nothing is copied.
//    f0r_update is ward::idempotent: a filter's output frame is a function of its input frame,
//    parameters and time, so a frame interrupted by a restart is computed again (this is not true
//    of frei0r's few temporal filters, e.g. delay0r: do not use this declaration for those).
//
// frei0r_fixed<W, H> is the copying alternative for one frame size known at compile time: the
// frames are ordinary host memory copied in and out on each call (ward::in/out with ward::elems).
#pragma once

#include <frei0r.h>

#include "ward/iface/deep.h"
#include "ward/ward.h"

WARD_STRUCT(f0r_plugin_info_t, (name, ward::text), (author, ward::text), (explanation, ward::text));
WARD_STRUCT(f0r_param_info_t, (name, ward::text), (explanation, ward::text));

WARD_LIBRARY(frei0r_lib,
             (f0r_init, ward::replay_after_restart),
             (f0r_deinit),
             (f0r_get_plugin_info, ward::out(0), ward::idempotent),
             (f0r_get_param_info, ward::out(0), ward::idempotent),
             (f0r_construct, ward::returns_opaque, ward::replay_after_restart),
             (f0r_destruct, ward::opaque(0), ward::releases(0)),
             (f0r_set_param_value, ward::opaque(0), ward::shared(1, ward::elems(16)), ward::replay_after_restart),
             (f0r_get_param_value, ward::opaque(0), ward::shared(1, ward::elems(16)), ward::idempotent),
             (f0r_update, ward::opaque(0), ward::shared(2), ward::shared(3), ward::idempotent));

// One frame size fixed at compile time: frames copied (in: W*H pixels sent, out: W*H pixels
// copied back and checked), no sandbox memory needed. Its own library (its own domain): tokens
// from frei0r_lib do not cross to it.
#define WARD_FREI0R_FIXED(name, pixels)                                                              \
  WARD_LIBRARY(name,                                                                                 \
               (f0r_init, ward::replay_after_restart),                                               \
               (f0r_construct, ward::returns_opaque, ward::replay_after_restart),                    \
               (f0r_destruct, ward::opaque(0), ward::releases(0)),                                   \
               (f0r_set_param_value, ward::opaque(0), ward::shared(1, ward::elems(16)), ward::replay_after_restart),  \
               (f0r_update, ward::opaque(0), ward::in(2, ward::elems(pixels)),                       \
                ward::out(3, ward::elems(pixels)), ward::idempotent))
