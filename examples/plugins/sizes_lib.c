/* sizes_lib.c - test plugin for the ways C sizes buffers (see sizes_lib.h). Honest by default;
 * set_mode makes it misreport what it filled. */
#include "sizes_lib.h"

#include <string.h>

static int mode = SL_HONEST;

static void sl_set_mode(int m) { mode = m; }

static const char message[] = "sizes: hello, world";

static size_t put_message(char *buf, size_t cap) {
  size_t n = sizeof message - 1 < cap ? sizeof message - 1 : cap;
  memset(buf, '#', cap);
  memcpy(buf, message, n);
  return n;
}

static int sl_get(char *buf, size_t *len) {
  size_t cap = *len;
  *len = put_message(buf, cap);
  if (mode == SL_LEN_PAST_CAPACITY) *len = cap + 1000;
  return 0;
}

static int sl_get_i(char *buf, int32_t *len) {
  size_t cap = *len < 0 ? 0 : (size_t)*len;
  *len = (int32_t)put_message(buf, cap);
  if (mode == SL_LEN_NEGATIVE) *len = -5;
  return 0;
}

static void sl_fill_block(uint32_t *block) {
  for (uint32_t i = 0; i < 16; ++i) block[i] = i * i;
}

static void sl_paint(uint8_t *px, int32_t w, int32_t h) {
  size_t n = (size_t)w * (size_t)h * 4;
  for (size_t k = 0; k < n; ++k) px[k] = (uint8_t)(k * 7 + 1);
}

static uint64_t sum_bytes(const uint8_t *v, size_t n) {
  uint64_t s = 0;
  for (size_t k = 0; k < n; ++k) s += v[k];
  return s;
}

static uint64_t sl_sum_box(const uint8_t *v, size_t a, size_t b, size_t c, size_t d) {
  return sum_bytes(v, a * b * c * d);
}

static uint64_t sl_sum_msg(const sl_hdr *h, const uint8_t *body) {
  return h->id + sum_bytes(body, h->len < 0 ? 0 : (size_t)h->len);
}

static uint64_t sl_sum_msg_val(sl_hdr h, const uint8_t *body) { return sl_sum_msg(&h, body); }

static int64_t sl_produce(uint8_t *buf, size_t cap) {
  size_t n = cap < 10 ? cap : 10;
  memset(buf, '#', cap);
  for (size_t k = 0; k < n; ++k) buf[k] = (uint8_t)('a' + k);
  if (mode == SL_RESULT_PAST_CAPACITY) return (int64_t)cap + 1;
  if (mode == SL_RESULT_NEGATIVE) return -1;
  return (int64_t)n;
}

static uint32_t sl_call_host(const sl_host *host) {
  const uint32_t quad[4] = {11, 22, 33, 44};
  const uint16_t pairs[6] = {1, 2, 3, 4, 5, 6};
  uint8_t triples[6];
  memset(triples, 0, sizeof triples);
  host->take_quad(quad);
  host->take_pairs(pairs, mode == SL_HOST_NEGATIVE_COUNT ? -1 : 3);
  host->give_triples(triples, 2);
  uint32_t sum = 0;
  for (int k = 0; k < 6; ++k) sum += triples[k];
  return sum;
}

static const sizes_api api = {
    .set_mode = sl_set_mode,
    .get = sl_get,
    .get_i = sl_get_i,
    .fill_block = sl_fill_block,
    .paint = sl_paint,
    .sum_box = sl_sum_box,
    .sum_msg = sl_sum_msg,
    .sum_msg_val = sl_sum_msg_val,
    .produce = sl_produce,
    .call_host = sl_call_host,
};

const sizes_api *sizes_entry(void) { return &api; }
