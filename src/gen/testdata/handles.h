/* A fresh header ward gen's tests read (never seen by the rules' author while writing them):
 * a key-value store behind an opaque handle. Every pointer here is decidable from types. */
#ifndef GEN_TESTDATA_HANDLES_H
#define GEN_TESTDATA_HANDLES_H
#include <stddef.h>
#include <stdint.h>

typedef struct kv_store kv_store; /* never defined: opaque */
typedef enum { KV_OK = 0, KV_MISSING = 2, KV_FULL = 7, KV_EIO = -5 } kv_status;

kv_store* kv_open(const char* path, unsigned flags);
kv_status kv_open_into(const char* path, kv_store** out);
void kv_close(kv_store* s);
kv_status kv_put(kv_store* s, const char* key, const void* value, size_t value_len);
kv_status kv_get(kv_store* s, const char* key, void* buf, size_t* len);
kv_status kv_read_block(kv_store* s, uint64_t block, uint8_t* dst, size_t dst_size);
const char* kv_strerror(kv_status st);
uint32_t kv_checksum(const unsigned char* data, size_t nbytes);
#endif
