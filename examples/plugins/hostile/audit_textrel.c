/* audit_textrel.c - hostile probe plugin that needs a text relocation: the code below loads an
 * absolute address (non-PIC), so the loader has to make the code segment writable to patch it,
 * and restore it executable afterwards. ward must refuse it at load with a clear reason (after
 * the filter, the loader's mprotect back to PROT_EXEC would otherwise die as an unexplained
 * violation; and writable code is what the filter is there to prevent). */
// ward-link-options: -Wl,-z,notext
#include "probe_plugin.h"

long g_answer = 42;

#if defined(__x86_64__)
/* movabs $g_answer, %rax: an R_X86_64_64 relocation inside .text. */
__asm__(".text\n"
        ".globl audit_textrel_answer\n"
        ".type audit_textrel_answer, @function\n"
        "audit_textrel_answer:\n"
        "  movabsq $g_answer, %rax\n"
        "  movq (%rax), %rax\n"
        "  ret\n"
        ".size audit_textrel_answer, .-audit_textrel_answer\n");
long audit_textrel_answer(void);
#else
static long audit_textrel_answer(void) { return g_answer; }
#endif

static int p_init(const probe_host *host) {
  (void)host;
  return 0;
}

static long p_run(long arg) { return arg != 0 ? audit_textrel_answer() : arg + 1; }

PROBE_PLUGIN(p_init, p_run)
