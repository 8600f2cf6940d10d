/* iface_bad_bool.c - hands the host bools whose byte is neither 0 nor 1 and enums outside their
 * enumerators, through every path (see hostile_values.h). The bytes are written with memcpy: a C
 * compiler would normalise a plain assignment to a bool. */
#include "hostile_values.h"

#include <string.h>

static uint8_t g_byte = 2;
static int32_t g_mode = HV_ON;

static void set_bool(bool *b) { memcpy(b, &g_byte, 1); }
static void set_mode(hv_mode *m) {
  _Static_assert(sizeof(hv_mode) == sizeof(int32_t), "hv_mode is an int");
  memcpy(m, &g_mode, sizeof *m);
}

static hv_rec make_rec(int32_t id) {
  hv_rec r;
  memset(&r, 0, sizeof r);
  r.id = id;
  set_bool(&r.ok);
  set_mode(&r.mode);
  return r;
}

static hv_outer make_outer(int32_t id) {
  hv_outer o;
  memset(&o, 0, sizeof o);
  o.rec = make_rec(id);
  for (int i = 0; i < 3; ++i) set_bool(&o.bits[i]);
  o.tag = 0x7f;
  set_bool(&o.last);
  return o;
}

static void configure(uint8_t bool_byte, int32_t mode_raw) {
  g_byte = bool_byte;
  g_mode = mode_raw;
}

static hv_rec get(void) { return make_rec(7); }

static int fill(hv_outer *out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = make_outer((int32_t)i);
  return (int)n;
}

static int bump(hv_outer *io) {
  const int32_t id = io->rec.id + 1;
  *io = make_outer(id);
  return id;
}

static hv_mode get_mode(void) {
  hv_mode m;
  set_mode(&m);
  return m;
}

static bool get_flag(void) {
  bool b;
  set_bool(&b);
  return b;
}

static int fill_flags(bool *out, size_t n) {
  for (size_t i = 0; i < n; ++i) set_bool(&out[i]);
  return (int)n;
}

static int call_host(const hv_host *h, int32_t which) {
  hv_outer many[3] = {make_outer(0), make_outer(1), make_outer(2)};
  hv_outer one = make_outer(9);
  hv_mode m;
  bool b, flags[4];
  for (int i = 0; i < 4; ++i) set_bool(&flags[i]);
  switch (which) {
    case 0: h->take(make_rec(5)); return 0;
    case 1: h->take_many(many, 3); return 0;
    case 2: h->update(&one); return one.rec.id;
    case 3: set_mode(&m); h->take_mode(m); return 0;
    case 4: set_bool(&b); h->take_flag(b); return 0;
    case 5: h->take_flags(flags, 4); return 0;
    default: return -1;
  }
}

static const hv_api api = {configure, get, fill, bump, get_mode, get_flag, fill_flags, call_host};

const hv_api *hv_entry(void) { return &api; }
