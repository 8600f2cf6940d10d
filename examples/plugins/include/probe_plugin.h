/* probe_plugin.h - what every probe plugin that only misbehaves in run() has in common: a poke
 * that fills the host's buffer with 0xAB and returns n, the function table and the entry point.
 * Such a plugin defines its init and run functions and ends with PROBE_PLUGIN(init, run). */
#ifndef WARD_EXAMPLE_PROBE_PLUGIN_H
#define WARD_EXAMPLE_PROBE_PLUGIN_H

#include "probe.h"

static long probe_fill_poke(unsigned char *buf, size_t n) {
  if (!buf && n) return -1;
  for (size_t i = 0; i < n; ++i) buf[i] = 0xAB;
  return (long)n;
}

#define PROBE_PLUGIN(init_fn, run_fn)                                                         \
  static const probe_api probe_table_ = {.init = (init_fn), .run = (run_fn), .poke = probe_fill_poke}; \
  const probe_api *probe_entry(void) { return &probe_table_; }

#endif
