/* A fresh header for ward gen's tests: callbacks with user data (typedef'd and written inline)
 * and nested structs, by value and through const pointers. All decidable. */
#ifndef GEN_TESTDATA_EVENTS_H
#define GEN_TESTDATA_EVENTS_H
#include <stddef.h>

struct ev_point { int x, y; };
struct ev_rect { struct ev_point min, max; double weight; };
typedef struct ev_bus ev_bus;

typedef int (*ev_handler)(void* user, int kind, const char* topic, const void* payload, size_t payload_len);

ev_bus* ev_bus_new(void);
int ev_subscribe(ev_bus* bus, const char* topic, ev_handler fn, void* user);
int ev_each_rect(ev_bus* bus, void (*visit)(const struct ev_rect* r, void* ctx), void* ctx);
int ev_publish(ev_bus* bus, const char* topic, const void* payload, size_t payload_len);
double ev_area(struct ev_rect r);
int ev_contains(const struct ev_rect* r, struct ev_point p);
int ev_bounds(const struct ev_point* pts, size_t count, struct ev_rect* out, size_t out_size);
void ev_bus_free(ev_bus* bus);
#endif
