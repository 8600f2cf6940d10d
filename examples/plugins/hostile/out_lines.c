/* out_lines.c - probe plugin that prints the way real plugins do, and some ways they should not:
 *   run(1): 100 numbered lines on stdout (printf) and on stderr (fprintf), then a line written in
 *           two pieces ("par" + "tial\n"), then "open" with no newline yet;
 *   run(2): finishes that line: " ended\n";
 *   run(3): a line with terminal control sequences (clear screen, carriage return, a C1 CSI and
 *           a bidi override), then a 10000-byte line;
 *   run(0): returns 1 and prints nothing. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "probe.h"

static int p_init(const probe_host *host) {
  (void)host;
  return 0;
}

static int put(int fd, const char *s) { return write(fd, s, strlen(s)) == (ssize_t)strlen(s) ? 0 : -1; }

static long p_run(long arg) {
  int bad = 0;
  switch (arg) {
    case 1:
      for (int i = 0; i < 100; ++i) {
        printf("out %d\n", i);
        fprintf(stderr, "err %d\n", i);
      }
      /* Raw writes after printf: only a line-buffered stdout has sent the lines above by now. */
      bad |= put(1, "par");
      bad |= put(1, "tial\n");
      bad |= put(1, "open");
      break;
    case 2:
      bad |= put(1, " ended\n");
      break;
    case 3: {
      bad |= put(1, "\033[2J\rforged\xc2\x9b" "31m\xe2\x80\xae" "txt.exe\n");
      static char longline[10001];
      for (int i = 0; i < 10000; ++i) longline[i] = (char)('a' + i % 26);
      longline[10000] = '\n';
      bad |= write(1, longline, sizeof longline) == (ssize_t)sizeof longline ? 0 : -1;
      break;
    }
    default:
      break;
  }
  return bad ? -1 : 1;
}

static long p_poke(unsigned char *buf, size_t n) {
  if (!buf && n) return -1;
  memset(buf, 0xAB, n);
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};

const probe_api *probe_entry(void) { return &api; }
