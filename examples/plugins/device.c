/* device.c - example plugin: a stateful in-memory block "device".
 * Exercises by-value structs, mixed float/double/int arguments, arrays of
 * structs, and plugin->host callbacks. */
#include "device.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define DEV_EINVAL (-22)
#define DEV_ENODEV (-19)
#define DEV_ENOMEM (-12)

#define DEV_MAX_BLOCK_SIZE 65536u
#define DEV_MAX_BLOCKS 4096u
#define DEV_MAX_BYTES (8u * 1024u * 1024u)

static const device_host *g_host;
static device_config g_cfg;   /* all zeros until configure() succeeds */
static uint8_t *g_storage;    /* NULL means "not configured" */
static device_stats g_stats;

static int dev_init(const device_host *host) {
  free(g_storage);
  g_storage = NULL;
  memset(&g_cfg, 0, sizeof g_cfg);
  memset(&g_stats, 0, sizeof g_stats);
  g_host = host;
  return 0;
}

static int dev_configure(const device_config *cfg) {
  if (!cfg) return DEV_EINVAL;
  if (cfg->block_size < 1 || cfg->block_size > DEV_MAX_BLOCK_SIZE)
    return DEV_EINVAL;
  if (cfg->blocks < 1 || cfg->blocks > DEV_MAX_BLOCKS) return DEV_EINVAL;
  uint64_t total = (uint64_t)cfg->block_size * cfg->blocks;
  if (total > DEV_MAX_BYTES) return DEV_EINVAL;

  /* Allocate before freeing so a failed allocation leaves the old device. */
  uint8_t *mem = calloc((size_t)total, 1);
  if (!mem) return DEV_ENOMEM;
  free(g_storage);
  g_storage = mem;
  g_cfg = *cfg;
  return 0;
}

static long dev_write(uint32_t block, const uint8_t *data, size_t n) {
  if (!g_storage) return DEV_ENODEV;
  if (block >= g_cfg.blocks || n > g_cfg.block_size || (!data && n))
    return DEV_EINVAL;
  if (n) memcpy(g_storage + (size_t)block * g_cfg.block_size, data, n);
  g_stats.writes++;
  g_stats.bytes_written += n;
  return (long)n;
}

static long dev_read(uint32_t block, uint8_t *data, size_t n) {
  if (!g_storage) return DEV_ENODEV;
  if (block >= g_cfg.blocks || (!data && n)) return DEV_EINVAL;
  size_t count = n < g_cfg.block_size ? n : g_cfg.block_size;
  if (count) memcpy(data, g_storage + (size_t)block * g_cfg.block_size, count);
  g_stats.reads++;
  g_stats.bytes_read += count;
  return (long)count;
}

static int dev_stats(device_stats *out) {
  if (!out) return DEV_EINVAL;
  *out = g_stats;
  return 0;
}

static device_config dev_get_config(void) { return g_cfg; }

static double dev_scale(double x, float y, int32_t k) {
  double gain = g_storage ? g_cfg.gain : 1.0;
  return x * gain * (double)y + (double)k;
}

static int dev_fill(uint32_t first, const device_config *cfgs, size_t ncfgs,
                    uint32_t *sums, size_t nsums) {
  size_t count = ncfgs < nsums ? ncfgs : nsums;
  if (count && (!cfgs || !sums)) return DEV_EINVAL;
  if (count > INT_MAX) count = INT_MAX; /* return type is int */
  for (size_t i = 0; i < count; ++i)
    sums[i] = cfgs[i].block_size + cfgs[i].blocks + first; /* wraps mod 2^32 */
  return (int)count;
}

static long dev_ping(void) { return 0; }

static long dev_log_echo(const char *msg, long times) {
  if (!msg || times < 0) return DEV_EINVAL;
  if (g_host && g_host->log) {
    for (long i = 0; i < times; ++i) g_host->log(msg);
  }
  if (g_host && g_host->now_ns) (void)g_host->now_ns();
  return times;
}

static const device_api api = {
    .init = dev_init,
    .configure = dev_configure,
    .write = dev_write,
    .read = dev_read,
    .stats = dev_stats,
    .get_config = dev_get_config,
    .scale = dev_scale,
    .fill = dev_fill,
    .ping = dev_ping,
    .log_echo = dev_log_echo,
};

const device_api *device_entry(void) { return &api; }
