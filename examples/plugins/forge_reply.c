/* forge_reply.c - a hostile plugin that attacks the channel itself instead of crashing.
 *
 * poke(buf, n) finds the shared arena from the pointer it was given (walking down page by page
 * to the arena's magic), then forges a message to the host and spins forever. The host must
 * reject each forgery as a policy violation at once, without waiting for the timeout:
 *   n == 1  a reply for a frame the host never sent
 *   n == 2  a message of an unknown kind
 *   n == 3  an upcall to a host service table that does not exist
 *   n == 4  an upcall to log() whose string runs to the end of the arena without a NUL
 *   n == 5  an upcall to log() whose string pointer lies outside the arena
 * The offsets below are ward's wire layout (checked by a static_assert in ward's tests); a real
 * attacker would read them from ward's headers just the same. */
#include <linux/futex.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "probe.h"

#define MAGIC 0x31414e4552414457ull /* "WDARENA1" */
#define OFF_ARENA_SIZE 16
#define OFF_TO_CHILD 128
#define OFF_TO_HOST 192
#define DB_SEQ 0
#define DB_MSG 16
#define MSG_KIND 0
#define MSG_TABLE 2
#define MSG_FN 4
#define MSG_FRAME_OFF 8
#define MSG_FRAME_LEN 16
#define MSG_TOP 24

static const probe_host *g_host;

static int init(const probe_host *host) {
  g_host = host;
  return 0;
}

static long run(long arg) { return arg + 1; }

static void put16(unsigned char *p, uint16_t v) { memcpy(p, &v, sizeof v); }
static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, sizeof v); }
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, sizeof v); }
static uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, sizeof v); return v; }

static long poke(unsigned char *buf, size_t n) {
  unsigned char *base = (unsigned char *)((uintptr_t)buf & ~(uintptr_t)4095);
  while (get64(base) != MAGIC) base -= 4096;
  const uint64_t arena_size = get64(base + OFF_ARENA_SIZE);
  const uint64_t buf_off = (uint64_t)(buf - base);
  unsigned char *msg = base + OFF_TO_HOST + DB_MSG;
  const unsigned char *call = base + OFF_TO_CHILD + DB_MSG;
  /* A frame for the forged upcalls, past the host's frame: [unused slot][param 0 slot]. */
  const uint64_t frame = (buf_off + n + 4096) & ~(uint64_t)15;
  unsigned char *slots = base + frame;
  memset(slots, 0, 32);
  switch (n) {
    case 1: /* reply to a frame that is not the call's */
      put16(msg + MSG_KIND, 4);
      put64(msg + MSG_FRAME_OFF, get64(call + MSG_FRAME_OFF) + 64);
      break;
    case 2:
      put16(msg + MSG_KIND, 77);
      break;
    case 3:
      put16(msg + MSG_KIND, 5);
      put16(msg + MSG_TABLE, 9);
      break;
    case 4: { /* string of 'A' up to the very end of the arena */
      const uint64_t s = frame + 64;
      memset(base + s, 'A', arena_size - s);
      put64(slots + 16, s);
      put16(msg + MSG_KIND, 5);
      put16(msg + MSG_TABLE, 1);
      put32(msg + MSG_FN, 0);
      break;
    }
    case 5:
      put64(slots + 16, arena_size + (1u << 20));
      put16(msg + MSG_KIND, 5);
      put16(msg + MSG_TABLE, 1);
      put32(msg + MSG_FN, 0);
      break;
    default:
      memset(buf, 0xAB, n);
      return (long)n;
  }
  put64(msg + MSG_FRAME_OFF, n == 1 ? get64(msg + MSG_FRAME_OFF) : frame);
  put64(msg + MSG_FRAME_LEN, 32);
  put64(msg + MSG_TOP, frame + 32);
  /* Ring the host's doorbell like the helper would. */
  volatile uint32_t *seq = (volatile uint32_t *)(base + OFF_TO_HOST + DB_SEQ);
  __atomic_fetch_add(seq, 1, __ATOMIC_SEQ_CST);
  syscall(SYS_futex, seq, FUTEX_WAKE, 1, 0, 0, 0);
  for (;;) {
  }
}

static const probe_api api = {init, run, poke};

const probe_api *probe_entry(void) { return &api; }
