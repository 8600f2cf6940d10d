/* via_dep.c - a probe plugin whose run() needs a shared library of its own (leaf.c). Built as
 * libdeppath_runpath.so (finds its leaf only through RUNPATH $ORIGIN/runpath) and as
 * libdeppath_ldpath.so (no RUNPATH: finds its leaf only through LD_LIBRARY_PATH). */
#include "probe.h"

long deppath_leaf_add(long x);

static int p_init(const probe_host *host) {
  (void)host;
  return 0;
}

static long p_run(long arg) { return deppath_leaf_add(arg); }

static long p_poke(unsigned char *buf, size_t n) {
  (void)buf;
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};

const probe_api *probe_entry(void) { return &api; }
