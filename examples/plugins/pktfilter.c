/* pktfilter.c - see pktfilter.h. Plain C, no ward headers. */
#include "pktfilter.h"

#include <stdio.h>

static const pkt_host *g_host;
static uint16_t g_blocked;
static uint64_t g_seen, g_dropped;
static volatile int g_crash;

static int init(const pkt_host *host, uint16_t blocked_port) {
  g_host = host;
  g_blocked = blocked_port;
  g_seen = g_dropped = 0;
  return 0;
}

static int on_packet(const packet *hdr, const uint8_t *payload, size_t len) {
  if (g_crash) {
    g_crash = 0;
    *(volatile int *)0 = 1;
  }
  ++g_seen;
  /* A payload that claims more than it carries is malformed: drop it. */
  if (!hdr || hdr->len != len || (len && !payload)) {
    ++g_dropped;
    return 0;
  }
  if (hdr->dst_port == g_blocked) {
    ++g_dropped;
    if (g_host && g_host->log && g_dropped == 1) {
      char msg[64];
      snprintf(msg, sizeof msg, "pktfilter: dropping traffic to port %u", (unsigned)g_blocked);
      g_host->log(msg);
    }
    return 0;
  }
  return 1;
}

static int wants(uint8_t proto, uint16_t dst_port) {
  (void)dst_port;
  return proto == PKT_TCP || proto == PKT_UDP;
}

static uint64_t seen(void) { return g_seen; }
static uint64_t dropped(void) { return g_dropped; }
static int crash_next(void) {
  g_crash = 1;
  return 0;
}

static const pktfilter_api api = {init, on_packet, wants, seen, dropped, crash_next};

const pktfilter_api *pktfilter_entry(void) { return &api; }
