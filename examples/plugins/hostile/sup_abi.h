/* sup_abi.h - ABI of the supervisor's hostile plugins (sup_*.c), which attack recovery: an init
 * that hangs or crashes slowly when it is replayed into a fresh instance, calls that answer just
 * under the call timeout. Each instance is a fresh process, so a plugin cannot tell a restart
 * from its first load by itself: the host's mode() answer is the switch the test flips. */
#ifndef WARD_HOSTILE_SUP_ABI_H
#define WARD_HOSTILE_SUP_ABI_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sup_host {
  long (*mode)(void); /* what init does this time: 0 = its job, no more; see each plugin */
} sup_host;

typedef struct sup_api {
  int (*init)(const sup_host *host); /* the host marks it replay_after_restart */
  long (*ping)(long x);              /* x + 1 */
  long (*work)(long ms);             /* see each plugin */
} sup_api;

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
const sup_api *sup_entry(void);

#ifdef __cplusplus
}
#endif

#endif
