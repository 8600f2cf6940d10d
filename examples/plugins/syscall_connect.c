/* syscall_connect.c - probe plugin whose run(arg != 0) creates a TCP socket
 * and connects to 127.0.0.1:9 (discard), which the sandbox should forbid.
 * Returns socket()'s result if it fails, otherwise connect()'s result. */
#define _POSIX_C_SOURCE 200809L
#include "probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const probe_host *g_host;

static int p_init(const probe_host *host) {
  g_host = host;
  return 0;
}

static long p_run(long arg) {
  if (arg != 0) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return fd;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(9);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (const struct sockaddr *)&addr, sizeof addr);
    close(fd);
    return rc;
  }
  return arg + 1;
}

static long p_poke(unsigned char *buf, size_t n) {
  if (!buf && n) return -1;
  for (size_t i = 0; i < n; ++i) buf[i] = 0xAB;
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};

const probe_api *probe_entry(void) { return &api; }
