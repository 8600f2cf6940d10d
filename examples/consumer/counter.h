/* counter.h - the consumer's own plugin: a plain C library, no ward header. */
#ifndef CONSUMER_COUNTER_H
#define CONSUMER_COUNTER_H

#ifdef __cplusplus
extern "C" {
#endif

/* Adds `by` to the plugin's counter and returns the new value. */
long counter_bump(long by);
/* Crashes the plugin (a null write): what the host survives. */
long counter_crash(long how);

#ifdef __cplusplus
}
#endif

#endif
