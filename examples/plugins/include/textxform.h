/* textxform.h - ABI of the example text-transformer plugin.
 * Plain C; the host and the plugin share only this header. */
#ifndef WARD_EXAMPLE_TEXTXFORM_H
#define WARD_EXAMPLE_TEXTXFORM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Keep the entry point visible even if the build uses -fvisibility=hidden. */
#if defined(__GNUC__)
#define TEXTXFORM_EXPORT __attribute__((visibility("default")))
#else
#define TEXTXFORM_EXPORT
#endif

typedef struct text_host {
  void (*log)(const char *msg);
} text_host;

typedef struct textxform_api {
  /* mode: "upper", "lower", "rot13", "reverse". Returns 0, or -1 for an
   * unknown mode. Stores host and logs "textxform: mode=<mode>". */
  int (*init)(const text_host *host, const char *mode);
  /* Writes the transformed NUL-terminated text into out. Returns the length
   * written, or -1 if cap < strlen(in) + 1 or the plugin is not initialised. */
  long (*transform)(const char *in, char *out, size_t cap);
  /* Number of words separated by ASCII whitespace. */
  long (*count_words)(const char *in);
  /* Static string with the current mode name ("none" before init). */
  const char *(*mode_name)(void);
} textxform_api;

TEXTXFORM_EXPORT const textxform_api *textxform_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* WARD_EXAMPLE_TEXTXFORM_H */
