/* A fresh header for ward gen's tests: pointers no rule can decide from types alone. Each must
 * come out as a marker whose question fails the build. */
#ifndef GEN_TESTDATA_UNDECIDABLE_H
#define GEN_TESTDATA_UNDECIDABLE_H
struct cfg { int level; const char* name; };
char* und_gets(char* line);                    /* no capacity beside the buffer */
int und_fill(struct cfg* c);                   /* filled, read, or kept? */
int und_parse(const char* text, int len);      /* a signed length: -1 may mean NUL-terminated */
int und_split(const char* s, char** parts);    /* an array, or an allocated string? */
void und_release(void* p);                     /* memory, or a handle? */
int und_register(void (*fn)(int));             /* a callback with no user data */
#endif
