/* audit_wx_segment.c - hostile probe plugin with a loadable segment that is writable and
 * executable at once: the section below is declared "awx" (the trailing '#' comments out the
 * flags the compiler appends), so the linker puts it in an RWX PT_LOAD that the loader maps
 * before the seccomp filter exists. run(1) writes machine code there and calls it. */
// ward-link-options: -Wl,--no-warn-rwx-segments
#include "hostile_code.h"
#include "probe_plugin.h"

__attribute__((section(".ward_wx,\"awx\",@progbits#"), used)) unsigned char g_wx[64];

static int p_init(const probe_host *host) {
  (void)host;
  return 0;
}

static long p_run(long arg) { return arg == 0 ? arg + 1 : hostile_run_code_at(g_wx); }

PROBE_PLUGIN(p_init, p_run)
