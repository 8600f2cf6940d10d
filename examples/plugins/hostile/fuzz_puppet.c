/* fuzz_puppet.c - the hostile plugin ward's fuzz host (fuzz/host_fuzz.cc) drives. Every exported
 * function receives the fuzz input as an `in` buffer and runs it as a script (fuzz/fuzz_puppet.h
 * lists the ops): write anywhere in the arena, forge channel messages and upcall frames, call
 * host services through their stubs with lying sizes, fake the fault record, die. Then it returns
 * whatever the script chose: a record with an invalid bool, a string pointer anywhere, a forged
 * reply. Everything the host decodes from an extension passes through here.
 *
 * The arena is found the way any plugin could: the script lies in it, and the control block (with
 * its magic) is at its first page. Layout offsets are those of include/ward/process/channel.h
 * (checked by static_asserts in the fuzz host).
 *
 * Desynchronisation: once a script has forged a message, the helper's view of the channel no
 * longer matches the host's, so the function does not return normally: it sends its result as a
 * forged reply, waits for the host's next message and exits. Any forged message other than an
 * upcall ends the script the same way. The host sees the extension exit on its next call (or
 * kills it first), and restarts it. */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../../../fuzz/fuzz_puppet.h"

/* wire::Control offsets */
enum {
  C_MAGIC = 0, C_VERSION = 8, C_SIZE = 16, C_DATA_OFF = 24,
  C_TO_CHILD_SEQ = 128, C_TO_CHILD_KIND = 144, C_TO_CHILD_FRAME = 152,
  C_TO_HOST_SEQ = 192, C_TO_HOST_SLEEPING = 196, C_TO_HOST_MSG = 208,
  C_FAULT = 256,
};
enum { K_RET = 4, K_UPRET = 6 };
static const uint64_t k_magic = 0x31414e4552414457ull; /* "WDARENA1" */

static const fz_host *g_host;
static unsigned char *g_base;
static uint64_t g_size;
static uint64_t g_last_handle;
static unsigned char g_buf[1 << 16];
static fz_pair g_pairs[4096];

/* ---- the arena ------------------------------------------------------------------------------ */
static int find_arena(const unsigned char *inside) {
  const uintptr_t page = 4096;
  for (uintptr_t p = (uintptr_t)inside & ~(page - 1), steps = 0; p && steps < (1u << 20); p -= page, ++steps) {
    uint64_t magic, size;
    uint32_t version;
    memcpy(&magic, (const void *)p, 8);
    if (magic != k_magic) continue;
    memcpy(&version, (const void *)(p + C_VERSION), 4);
    memcpy(&size, (const void *)(p + C_SIZE), 8);
    if (size >= 4096 && (uintptr_t)inside - p < size) {
      g_base = (unsigned char *)p;
      g_size = size;
      return 1;
    }
  }
  return 0;
}

static uint32_t *word(uint64_t off) { return (uint32_t *)(void *)(g_base + off); }

/* ---- the script ----------------------------------------------------------------------------- */
struct script {
  const uint8_t *p;
  size_t n, i;
  uint64_t at;        /* the script's arena offset */
  uint64_t frame;     /* this call's frame (from the host's message) */
  uint64_t ret_a, ret_b;
  uint8_t ret_mode;
  int desynced;
};

static uint64_t take(struct script *s, unsigned bytes) {
  uint64_t v = 0;
  for (unsigned k = 0; k < bytes; ++k, ++s->i)
    if (s->i < s->n) v |= (uint64_t)s->p[s->i] << (8 * k);
  return v;
}

/* An "off" operand: relative to the script below 2^31, from the arena start above; kept inside. */
static uint64_t resolve(const struct script *s, uint64_t v) {
  const uint64_t off = v < (1ull << 31) ? s->at + v : v - (1ull << 31);
  return off % g_size;
}

static void ring_host(void) {
  __atomic_fetch_add(word(C_TO_HOST_SEQ), 1, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(word(C_TO_HOST_SLEEPING), __ATOMIC_SEQ_CST) != 0)
    syscall(SYS_futex, word(C_TO_HOST_SEQ), FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* Waits (bounded) for the host's next message; returns its kind, or -1 on time-out. */
static int wait_host(uint32_t seen, int ms) {
  for (int k = 0; k < ms; ++k) {
    if (__atomic_load_n(word(C_TO_CHILD_SEQ), __ATOMIC_SEQ_CST) != seen) {
      uint16_t kind;
      memcpy(&kind, g_base + C_TO_CHILD_KIND, 2);
      return kind;
    }
    struct timespec ts = {0, 1000000};
    syscall(SYS_futex, word(C_TO_CHILD_SEQ), FUTEX_WAIT, seen, &ts, NULL, 0);
  }
  return -1;
}

static void forge(struct script *s, uint16_t kind, uint16_t table, uint32_t fn, uint64_t frame, uint64_t len,
                  uint64_t top, uint64_t a, uint64_t b) {
  unsigned char msg[48];
  memset(msg, 0, sizeof msg);
  memcpy(msg + 0, &kind, 2);
  memcpy(msg + 2, &table, 2);
  memcpy(msg + 4, &fn, 4);
  memcpy(msg + 8, &frame, 8);
  memcpy(msg + 16, &len, 8);
  memcpy(msg + 24, &top, 8);
  memcpy(msg + 32, &a, 8);
  memcpy(msg + 40, &b, 8);
  const uint32_t seen = __atomic_load_n(word(C_TO_CHILD_SEQ), __ATOMIC_SEQ_CST);
  memcpy(g_base + C_TO_HOST_MSG, msg, sizeof msg);
  ring_host();
  s->desynced = 1;
  /* A forged upcall is answered with upret: carry on. Anything else means the host moved on
   * (took a forged reply and sent its next call) or is about to kill us: stop here. */
  if (wait_host(seen, 100) != K_UPRET) syscall(SYS_exit_group, 0);
}

static void finish_desynced(struct script *s) {
  forge(s, K_RET, 0, 0, s->frame, 0, 0, s->ret_a, s->ret_b); /* does not come back */
  syscall(SYS_exit_group, 0);
}

static void call_service(struct script *s) {
  if (!g_host) return;
  switch (take(s, 1) % 10) {
    case 0: {
      const size_t len = (size_t)take(s, 1);
      char msg[257];
      for (size_t k = 0; k < len; ++k) msg[k] = (char)take(s, 1);
      msg[len] = '\0';
      g_host->log(msg);
      break;
    }
    case 1: {
      const uint64_t mode = take(s, 1);
      const size_t n = (size_t)take(s, 2);
      (void)g_host->sum(mode & 1 ? s->p : (mode & 2 ? g_buf : NULL), n);
      break;
    }
    case 2: (void)g_host->fill(g_buf, (size_t)take(s, 2)); break;
    case 3: (void)g_host->twiddle(g_pairs, (int32_t)take(s, 4)); break;
    case 4: {
      fz_rec r;
      const uint64_t lo = take(s, 8), hi = take(s, 8);
      memcpy(&r, &lo, 8);
      memcpy((char *)&r + 8, &hi, 8);
      fz_pair pr = {(float)take(s, 2), (int32_t)take(s, 4)};
      const fz_rec back = g_host->echo(r, take(s, 1) & 1 ? &pr : NULL);
      g_last_handle ^= (uint64_t)back.a;
      break;
    }
    case 5: {
      const char *name = g_host->name((int32_t)take(s, 4));
      if (name) g_last_handle ^= (uint64_t)strlen(name);
      break;
    }
    case 6: g_last_handle = g_host->grant((uint32_t)take(s, 4)); break;
    case 7: {
      const uint64_t mode = take(s, 1), h = take(s, 8);
      (void)g_host->use(mode % 3 == 0 ? g_last_handle : mode % 3 == 1 ? h : g_last_handle ^ h);
      break;
    }
    case 8: {
      const size_t len = (size_t)take(s, 1);
      const size_t start = s->i < s->n ? s->i : s->n;
      const size_t avail = s->n - start;
      (void)g_host->again(s->p + start, len < avail ? len : avail);
      s->i = start + (len < avail ? len : avail);
      break;
    }
    case 9:
      if (g_host->denied) (void)g_host->denied();
      break;
  }
}

static void run_script(struct script *s) {
  while (s->i < s->n) {
    switch (take(s, 1) % 10) {
      case FZ_RET:
        s->ret_mode = (uint8_t)take(s, 1);
        s->ret_a = take(s, 8);
        s->ret_b = take(s, 8);
        break;
      case FZ_POKE: {
        const uint64_t off = resolve(s, take(s, 4));
        const uint64_t len = take(s, 1);
        for (uint64_t k = 0; k < len; ++k) {
          const uint8_t v = (uint8_t)take(s, 1);
          if (off + k < g_size) g_base[off + k] = v;
        }
        break;
      }
      case FZ_CALL: call_service(s); break;
      case FZ_FORGE: {
        const uint16_t kind = (uint16_t)take(s, 2), table = (uint16_t)take(s, 2);
        const uint32_t fn = (uint32_t)take(s, 4);
        const uint64_t fsel = take(s, 4);
        const uint64_t frame = fsel == 0xffffffffu ? s->frame : resolve(s, fsel);
        const uint64_t len = take(s, 8);
        const uint64_t top = resolve(s, take(s, 4));
        const uint64_t a = take(s, 8), b = take(s, 8);
        forge(s, kind, table, fn, frame, len, top, a, b);
        break;
      }
      case FZ_FRAME: {
        const uint64_t off = resolve(s, take(s, 4)) & ~15ull;
        const uint64_t nslots = take(s, 1) % 14;
        for (uint64_t k = 0; k < nslots; ++k) {
          const uint64_t mode = take(s, 1), v = take(s, 8), b = take(s, 8);
          const uint64_t a = mode % 3 == 0 ? v : mode % 3 == 1 ? resolve(s, v & 0xffffffffu) : ~0ull;
          if (off + 16 * (k + 1) <= g_size) {
            memcpy(g_base + off + 16 * k, &a, 8);
            memcpy(g_base + off + 16 * k + 8, &b, 8);
          }
        }
        break;
      }
      case FZ_WAKE: {
        const uint64_t n = take(s, 1) % 8; /* bounded: each input should stay fast */
        for (uint64_t k = 0; k < n; ++k) {
          syscall(SYS_futex, word(C_TO_HOST_SEQ), FUTEX_WAKE, 1, NULL, NULL, 0);
          sched_yield();
        }
        break;
      }
      case FZ_FAULT: {
        unsigned char rec[24];
        for (unsigned k = 0; k < 16; ++k) rec[k] = (unsigned char)take(s, 1);
        const uint64_t alloc = take(s, 8);
        memcpy(rec + 16, &alloc, 8);
        memcpy(g_base + C_FAULT, rec, sizeof rec);
        break;
      }
      case FZ_EXIT: syscall(SYS_exit_group, (int)take(s, 1)); break;
      case FZ_CRASH: *(volatile int *)(uintptr_t)take(s, 0) = 1; break;
      case FZ_SCRIBBLE: {
        const uint8_t v = (uint8_t)take(s, 1);
        const uint64_t from = s->at + s->n;
        if (from < g_size) memset(g_base + from, v, g_size - from);
        break;
      }
    }
  }
}

/* Runs the script; returns it finished (for the caller to return s->ret_*). */
static void start(struct script *s, const uint8_t *script, size_t n) {
  memset(s, 0, sizeof *s);
  s->p = script;
  s->n = n;
  if (!script || (!g_base && !find_arena(script))) return;
  s->at = (uint64_t)(script - g_base);
  memcpy(&s->frame, g_base + C_TO_CHILD_FRAME, 8);
  run_script(s);
  if (s->desynced) finish_desynced(s);
}

/* ---- the plugin's functions ----------------------------------------------------------------- */
static int32_t p_init(const fz_host *host) {
  g_host = host;
  return 0;
}

static int64_t p_run(const uint8_t *script, size_t n) {
  struct script s;
  start(&s, script, n);
  return (int64_t)s.ret_a;
}

static fz_rec p_run_rec(const uint8_t *script, size_t n) {
  struct script s;
  start(&s, script, n);
  fz_rec r;
  memcpy(&r, &s.ret_a, 8);
  memcpy((char *)&r + 8, &s.ret_b, 8);
  return r; /* any bit pattern, `ok` included */
}

static const char *p_run_str(const uint8_t *script, size_t n) {
  struct script s;
  start(&s, script, n);
  switch (s.ret_mode % 4) {
    case 0: return NULL;
    case 1: return "puppet";
    case 2: return g_base ? (const char *)g_base + resolve(&s, s.ret_a) : NULL; /* maybe unterminated */
    default:
      memcpy(g_buf, &s.ret_a, 8);
      memcpy(g_buf + 8, &s.ret_b, 8);
      g_buf[16] = 0;
      return (const char *)g_buf;
  }
}

static int64_t p_run_out(const uint8_t *script, size_t n, uint8_t *out, size_t m) {
  struct script s;
  for (size_t k = 0; k < m && out; ++k) out[k] = (uint8_t)(k * 7);
  start(&s, script, n);
  return (int64_t)s.ret_a;
}

static int64_t p_run_inout(const uint8_t *script, size_t n, fz_pair *io, size_t m) {
  struct script s;
  for (size_t k = 0; k < m && io; ++k) io[k].n += 1;
  start(&s, script, n);
  return (int64_t)s.ret_a;
}

static bool p_run_bool(const uint8_t *script, size_t n) {
  struct script s;
  start(&s, script, n);
  bool b;
  const uint8_t raw = (uint8_t)s.ret_a; /* any byte, 2..255 included */
  memcpy(&b, &raw, 1);
  return b;
}

static uint64_t p_run_handle(const uint8_t *script, size_t n) {
  struct script s;
  start(&s, script, n);
  return s.ret_mode & 1 ? g_last_handle ^ s.ret_a : s.ret_a;
}

static const fz_api api = {
    .init = p_init,
    .run = p_run,
    .run_rec = p_run_rec,
    .run_str = p_run_str,
    .run_out = p_run_out,
    .run_inout = p_run_inout,
    .run_bool = p_run_bool,
    .run_handle = p_run_handle,
    .nested = p_run,
};

const fz_api *fz_entry(void) { return &api; }
