/* iface_reentrant.c - a packet filter (pktfilter.h's ABI) that calls its host's log service on
 * every packet. A host whose log service raises the packet event again (it "reinjects" what it
 * logs) recurses through the extension: raise -> on_packet -> log -> raise -> ... Without a
 * nesting limit that ends in a stack overflow in the host. */
#include "pktfilter.h"

#include <stddef.h>

static const pkt_host *g_host;
static uint64_t g_seen;

static int init(const pkt_host *host, uint16_t blocked_port) {
  (void)blocked_port;
  g_host = host;
  g_seen = 0;
  return 0;
}

static int on_packet(const packet *hdr, const uint8_t *payload, size_t len) {
  (void)hdr;
  (void)payload;
  (void)len;
  ++g_seen;
  if (g_host && g_host->log) g_host->log("again");
  return 1;
}

static int wants(uint8_t proto, uint16_t dst_port) {
  (void)proto;
  (void)dst_port;
  return 1;
}
static uint64_t seen(void) { return g_seen; }
static uint64_t dropped(void) { return 0; }
static int crash_next(void) { return 0; }

static const pktfilter_api api = {init, on_packet, wants, seen, dropped, crash_next};

const pktfilter_api *pktfilter_entry(void) { return &api; }
