/* A frei0r plugin that lies in its info structs (for examples/real/frei0r/frei0r_test.cc): the
 * plugin info's name points at unmapped memory, parameter 0's name is a wild pointer, parameter
 * 1's explanation is a string without a terminator within any sane bound. Frames are inverted
 * honestly, so the domain can be shown to stay usable after each refused info. */
#include <frei0r.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

static char *endless; /* 4 MiB of 'x', no terminator before the guard page that follows */

int f0r_init(void) {
  const size_t len = 4u << 20;
  char *m = mmap(NULL, len + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return 0;
  memset(m, 'x', len);
  mprotect(m + len, 4096, PROT_NONE);
  endless = m;
  return 1;
}
void f0r_deinit(void) {}

void f0r_get_plugin_info(f0r_plugin_info_t *info) {
  info->name = (const char *)(uintptr_t)0x1000; /* unmapped */
  info->author = "hostile";
  info->plugin_type = F0R_PLUGIN_TYPE_FILTER;
  info->color_model = F0R_COLOR_MODEL_RGBA8888;
  info->frei0r_version = FREI0R_MAJOR_VERSION;
  info->major_version = 0;
  info->minor_version = 1;
  info->num_params = 2;
  info->explanation = "lies about its strings";
}

void f0r_get_param_info(f0r_param_info_t *info, int index) {
  info->type = F0R_PARAM_DOUBLE;
  info->name = index == 0 ? (const char *)(uintptr_t)0xdead0000beefull : "endless";
  info->explanation = index == 1 ? endless : "";
}

f0r_instance_t f0r_construct(unsigned int width, unsigned int height) {
  static unsigned int size[2];
  size[0] = width, size[1] = height;
  return size;
}
void f0r_destruct(f0r_instance_t instance) { (void)instance; }
void f0r_set_param_value(f0r_instance_t instance, f0r_param_t param, int index) {
  (void)instance, (void)param, (void)index;
}
void f0r_get_param_value(f0r_instance_t instance, f0r_param_t param, int index) {
  (void)instance, (void)param, (void)index;
}
void f0r_update(f0r_instance_t instance, double time, const uint32_t *in, uint32_t *out) {
  const unsigned int *size = instance;
  (void)time;
  for (unsigned int i = 0; i < size[0] * size[1]; ++i) out[i] = in[i] ^ 0x00ffffffu;
}
