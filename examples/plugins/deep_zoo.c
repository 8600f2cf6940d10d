/* deep_zoo.c - see deep_zoo.h. Written like any plugin: nothing here knows about ward. */
#include "deep_zoo.h"

#include <stddef.h>

static long zoo_scale(const zoo_desc *self, long x) { return (long)self->id * x; }

static long zoo_sum(const zoo_desc *self, const int *v, unsigned long n) {
  long s = 0;
  for (unsigned long i = 0; i < n; ++i) s += v[i];
  return s + (long)self->nports;
}

static const int kinds0[] = {1, 2, 4};
static const char *const names0[] = {"In", "Out", "Gain (dB)"};
static const zoo_port ports0[] = {{"in", 1, {0, 0}}, {"out", 2, {0, 0}}, {"gain", 4, {-60, 24}}};
static const zoo_range range0 = {-1, 1};
static int private0 = 42;

static const char *const names1[] = {"Left", ""};
static const zoo_port ports1[] = {{"l", 9, {1, 2}}, {NULL, 10, {3, 4}}};

static const zoo_desc descs[] = {
    {1001, "amp", false, "amp", 3, kinds0, names0, ports0, &range0, "a simple amplifier", &private0, zoo_scale, zoo_sum, NULL},
    {1002, "pan", true, {'p', 'a', 'n', 0, 'x', 'y'}, 2, kinds0, names1, ports1, NULL, NULL, NULL, zoo_scale, NULL, NULL},
};

const zoo_desc *zoo_descriptor(unsigned long index) {
  return index < sizeof descs / sizeof descs[0] ? &descs[index] : NULL;
}

void zoo_get_info(zoo_info *info) {
  info->name = "deep zoo";
  info->author = "ward tests";
  info->version = 3;
  info->experimental = true;
}
