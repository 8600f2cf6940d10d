/* pktfilter.h - ABI of the example packet filter plugin (SPIN's classic: an extension that
 * handles "packet received"). It counts packets, drops those to a blocked port, and can be told
 * to crash on the next packet (for the demo's failure injection). */
#ifndef WARD_EXAMPLE_PKTFILTER_H
#define WARD_EXAMPLE_PKTFILTER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { PKT_TCP = 6, PKT_UDP = 17, PKT_ICMP = 1 };

typedef struct packet {
  uint8_t proto;
  uint8_t ttl;
  uint16_t src_port;
  uint16_t dst_port;
  uint16_t reserved;
  uint32_t src_addr;
  uint32_t dst_addr;
  uint32_t len;        /* payload bytes */
} packet;

typedef struct pkt_host {
  void (*log)(const char *msg);
} pkt_host;

typedef struct pktfilter_api {
  int (*init)(const pkt_host *host, uint16_t blocked_port);
  /* Verdict for one packet: 1 accept, 0 drop. Counts everything it sees. */
  int (*on_packet)(const packet *hdr, const uint8_t *payload, size_t len);
  /* Its own guard: 1 if it wants packets of this protocol/port at all. */
  int (*wants)(uint8_t proto, uint16_t dst_port);
  uint64_t (*seen)(void);
  uint64_t (*dropped)(void);
  int (*crash_next)(void);  /* the next on_packet dereferences NULL */
} pktfilter_api;

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
const pktfilter_api *pktfilter_entry(void);

#ifdef __cplusplus
}
#endif

#endif
