/* dom_stat_probe.c - finding 4 of the review: newfstatat was allowed whenever AT_EMPTY_PATH was
 * set, but the kernel still looks up a non-empty path, so the plugin learns whether any file
 * exists, and its size, owner and times.
 * run(1): stat "/etc/passwd" that way; run(2): a path that does not exist; both return
 * st_size or -errno. run(3): glibc's fstat(1) (must stay harmless); run(4): a plain path stat. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "probe.h"

static long probe_path(const char *path, int flags) {
  struct stat st;
  if (syscall(SYS_newfstatat, AT_FDCWD, path, &st, flags) != 0) return -errno;
  return (long)st.st_size;
}

static int p_init(const probe_host *host) {
  (void)host;
  return 0;
}

static long p_run(long arg) {
  struct stat st;
  switch (arg) {
    case 1: return probe_path("/etc/passwd", AT_EMPTY_PATH);
    case 2: return probe_path("/nonexistent/ward-stat-probe", AT_EMPTY_PATH);
    case 3: return fstat(1, &st) == 0 ? 0 : -errno;
    case 4: return probe_path("/etc/passwd", 0);
    default: return arg + 1;
  }
}

static long p_poke(unsigned char *buf, size_t n) {
  (void)buf;
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};
const probe_api *probe_entry(void) { return &api; }
