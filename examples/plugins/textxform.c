/* textxform.c - example plugin: ASCII text transformer.
 * Deliberately locale-independent (no <ctype.h>) so the result does not
 * depend on whatever locale the sandboxed child inherits. */
#include "textxform.h"

#include <stdio.h>
#include <string.h>

enum xmode { MODE_NONE, MODE_UPPER, MODE_LOWER, MODE_ROT13, MODE_REVERSE };

static const char *const mode_names[] = {"none", "upper", "lower", "rot13",
                                         "reverse"};

static const text_host *g_host;
static enum xmode g_mode = MODE_NONE;

static int tx_init(const text_host *host, const char *mode) {
  enum xmode m = MODE_NONE;
  if (mode) {
    for (int i = MODE_UPPER; i <= MODE_REVERSE; ++i) {
      if (strcmp(mode, mode_names[i]) == 0) {
        m = (enum xmode)i;
        break;
      }
    }
  }
  if (m == MODE_NONE) return -1; /* unknown mode: keep previous state */

  g_host = host;
  g_mode = m;
  if (host && host->log) {
    char msg[64];
    snprintf(msg, sizeof msg, "textxform: mode=%s", mode_names[m]);
    host->log(msg);
  }
  return 0;
}

static char map_char(char c) {
  switch (g_mode) {
  case MODE_UPPER:
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
  case MODE_LOWER:
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
  case MODE_ROT13:
    if (c >= 'a' && c <= 'z') return (char)('a' + (c - 'a' + 13) % 26);
    if (c >= 'A' && c <= 'Z') return (char)('A' + (c - 'A' + 13) % 26);
    return c;
  default:
    return c;
  }
}

static long tx_transform(const char *in, char *out, size_t cap) {
  if (g_mode == MODE_NONE || !in || !out) return -1;
  size_t len = strlen(in);
  if (cap < len + 1) return -1;

  if (g_mode == MODE_REVERSE) {
    if (in == out) {
      /* In-place call: swap ends so we never read an overwritten byte. */
      for (size_t i = 0, j = len; i + 1 < j; ++i, --j) {
        char t = out[i];
        out[i] = out[j - 1];
        out[j - 1] = t;
      }
    } else {
      for (size_t i = 0; i < len; ++i) out[i] = in[len - 1 - i];
    }
  } else {
    /* Per-byte mapping is safe for in == out as well. */
    for (size_t i = 0; i < len; ++i) out[i] = map_char(in[i]);
  }
  out[len] = '\0';
  return (long)len;
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
         c == '\r';
}

static long tx_count_words(const char *in) {
  if (!in) return 0;
  long words = 0;
  int in_word = 0;
  for (; *in; ++in) {
    if (is_space(*in)) {
      in_word = 0;
    } else if (!in_word) {
      in_word = 1;
      ++words;
    }
  }
  return words;
}

static const char *tx_mode_name(void) { return mode_names[g_mode]; }

static const textxform_api api = {
    .init = tx_init,
    .transform = tx_transform,
    .count_words = tx_count_words,
    .mode_name = tx_mode_name,
};

const textxform_api *textxform_entry(void) { return &api; }
