/* kv.h - ABI of the example key-value plugin. It keeps named tables of small values, journals
 * every put into a buffer the host lends it (a host object it holds by handle), and can be told
 * to misbehave on its next call, so a host can inject faults into a plugin it is using. */
#ifndef WARD_EXAMPLE_KV_H
#define WARD_EXAMPLE_KV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kv_host {
  uint64_t (*buf_open)(uint32_t size);   /* lends a host buffer; returns a handle, 0 if refused */
  long (*buf_write)(uint64_t buf, uint32_t off, const uint8_t *data, size_t n); /* bytes written or -1 */
  int (*buf_close)(uint64_t buf);
  void (*log)(const char *msg);
} kv_host;

enum kv_fault {
  KV_FAULT_NONE = 0,
  KV_FAULT_SEGV = 1,        /* dereference NULL */
  KV_FAULT_HANG = 2,        /* spin forever */
  KV_FAULT_WILD_WRITE = 3,  /* write far outside anything it owns */
  KV_FAULT_SYSCALL = 4,     /* open a file (forbidden) */
  KV_FAULT_HANDLE_LEAK = 5, /* borrow host buffers without returning them, until refused */
  KV_FAULT_FORGED = 6,      /* pass the host a handle it never issued */
  KV_FAULT_MEMORY = 7,      /* allocate until the memory limit */
  KV_FAULT_EXIT = 8,        /* exit(3) */
  KV_FAULT_ABORT = 9,       /* abort() */
};

typedef struct kv_api {
  int (*init)(const kv_host *host);                   /* borrows a journal buffer; 0 or -1 */
  uint64_t (*open_table)(const char *name);           /* a table id (issued by the plugin; 0 on error) */
  long (*put)(uint64_t table, uint32_t key, const uint8_t *val, size_t n); /* n <= 64; returns n or <0 */
  long (*get)(uint64_t table, uint32_t key, uint8_t *out, size_t cap);     /* value length, -2 absent */
  long (*count)(uint64_t table);                      /* keys in the table, or -1 */
  int (*inject)(int fault);                           /* the next put/get misbehaves as told */
  long (*ping)(void);
  long (*del)(uint64_t table, uint32_t key);          /* 0, or -2 if absent */
  int (*close_table)(uint64_t table);                 /* 0, or -22 for an unknown table */
} kv_api;

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
const kv_api *kv_entry(void);

#ifdef __cplusplus
}
#endif

#endif
