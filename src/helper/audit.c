/* ward's rtld-audit module, loaded into every domain helper with LD_AUDIT.
 *
 * Why it exists: the seccomp filter has to be in force before any plugin code runs, and plugin
 * code starts running inside dlopen (IFUNC resolvers during relocation, then constructors). But
 * dlopen itself must open the plugin and its dependencies, which the filter forbids. The dynamic
 * linker reports LA_ACT_CONSISTENT once every new object is mapped and before relocation and
 * initialisation begin; installing the filter right there closes the gap exactly.
 *
 * The filter (a BPF program the host compiled with libseccomp for this child's pid) sits in the
 * arena's boot area on descriptor 3. The module is armed only once the plugin object itself
 * (WARD_PLUGIN) has been mapped, so the helper's own start-up is unaffected. If anything fails,
 * the process exits before the plugin can run; the helper double-checks with PR_GET_SECCOMP. */
#define _GNU_SOURCE
#include <link.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

/* Offsets into wire::Control, checked against the C++ definition by a static_assert in the
 * helper (kept as plain numbers here because this module is C). */
#define WARD_CTL_FILTER_LEN 68
#define WARD_CTL_FILTER_OFF 72
#define WARD_EXIT_BAD_SETUP 120

static int armed;
static int installed;

unsigned int la_version(unsigned int version) { return version < LAV_CURRENT ? version : LAV_CURRENT; }

unsigned int la_objopen(struct link_map *map, Lmid_t lmid, uintptr_t *cookie) {
  (void)lmid;
  (void)cookie;
  const char *want = getenv("WARD_PLUGIN");
  if (want && map->l_name && strcmp(map->l_name, want) == 0) armed = 1;
  return 0; /* no symbol-binding audit: keeps calls through the PLT at full speed */
}

static void install_or_die(void) {
  const long page = sysconf(_SC_PAGESIZE);
  /* Map the control page first to learn where the filter lies, then map up to its end. */
  const unsigned char *ctl = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, 3, 0);
  if (ctl == MAP_FAILED) _exit(WARD_EXIT_BAD_SETUP);
  uint32_t len;
  uint64_t off;
  memcpy(&len, ctl + WARD_CTL_FILTER_LEN, sizeof len);
  memcpy(&off, ctl + WARD_CTL_FILTER_OFF, sizeof off);
  munmap((void *)ctl, (size_t)page);
  if (len == 0 || len > 65535) _exit(WARD_EXIT_BAD_SETUP);
  const size_t span = (size_t)off + (size_t)len * sizeof(struct sock_filter);
  const unsigned char *base = mmap(NULL, span, PROT_READ, MAP_SHARED, 3, 0);
  if (base == MAP_FAILED) _exit(WARD_EXIT_BAD_SETUP);
  struct sock_fprog prog = {.len = (unsigned short)len, .filter = (struct sock_filter *)(base + off)};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(WARD_EXIT_BAD_SETUP);
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) _exit(WARD_EXIT_BAD_SETUP);
  /* The kernel copied the program; the mapping is no longer needed (and munmap is allowed). */
  munmap((void *)base, span);
  installed = 1;
}

void la_activity(uintptr_t *cookie, unsigned int flag) {
  (void)cookie;
  if (flag == LA_ACT_CONSISTENT && armed && !installed) install_or_die();
}
