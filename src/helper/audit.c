/* ward's rtld-audit module, loaded into every domain helper with LD_AUDIT.
 *
 * Why it exists: the seccomp filter has to be in force before any plugin code runs, and plugin
 * code starts running inside dlopen (IFUNC resolvers during relocation, then constructors). But
 * dlopen itself must open the plugin and its dependencies, which the filter forbids. The dynamic
 * linker reports LA_ACT_CONSISTENT once every new object is mapped and before relocation and
 * initialisation begin; installing the filter right there closes the gap exactly.
 *
 * The filter (a BPF program the host compiled with libseccomp for this child's pid) sits in the
 * arena's boot area on descriptor 3. The module is armed only once the plugin object itself
 * (WARD_PLUGIN) has been mapped, so the helper's own start-up is unaffected. If anything fails,
 * the process exits before the plugin can run; the helper double-checks with PR_GET_SECCOMP.
 *
 * Load checks. The filter forbids PROT_EXEC from the moment it is installed, but the loader acts
 * on an object's headers while mapping it, before that: an object that asks for an executable
 * stack gets one (glibc makes the whole stack executable), a PT_LOAD marked writable and
 * executable is mapped so, and text relocations make the loader write into code. Any of these
 * hands the plugin memory it can write and then run, which is exactly what the filter is there to
 * prevent. So every object opened once armed (the plugin and every dependency it pulls in) is
 * checked in la_objopen, after mapping and before any of its code can run, and refused with a
 * load error naming it and the reason. Refusing ends the process: the loader offers no way to fail
 * a load from here, and nothing of the plugin has run yet. The checks apply whatever the policy
 * (even `unsafe_allow_executable_memory`): no legitimate object needs any of the three.
 *
 * The checks read what the loader acted on. Program headers come from the mapped image (l_addr +
 * the ELF header), accepted only if they describe the same object the loader mapped (magic,
 * sizes, the header mapped at file offset 0, PT_DYNAMIC at l_ld); otherwise they are read from
 * the file. Text relocations come from the dynamic section at l_ld, the copy the loader itself
 * uses. As a last line, once the new objects are all mapped and before the filter goes on, the
 * process's own mappings are checked for the effect itself (an executable stack, any writable and
 * executable mapping): headers crafted to show one thing in memory and another in the file cannot
 * get past that. */
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* Offsets into wire::Control, checked against the C++ definition by static_asserts in the
 * helper (kept as plain numbers here because this module is C). */
#define WARD_CTL_FILTER_LEN 68
#define WARD_CTL_FILTER_OFF 72
#define WARD_CTL_TO_HOST_SEQ 192      /* Control::to_host.seq (uint32, futex word) */
#define WARD_CTL_TO_HOST_SLEEPING 196 /* Control::to_host.sleeping (uint32) */
#define WARD_CTL_TO_HOST_KIND 208     /* Control::to_host.msg.kind (uint16) */
#define WARD_CTL_FAULT_TEXT 280       /* Control::fault.text */
#define WARD_FAULT_TEXT_SIZE 512
#define WARD_MSG_LOAD_ERROR 2         /* MsgKind::load_error */
#define WARD_EXIT_BAD_SETUP 120

static int armed;
static int installed;

unsigned int la_version(unsigned int version) { return version < LAV_CURRENT ? version : LAV_CURRENT; }

/* ---- reporting --------------------------------------------------------------------------------
 * The same report the helper's load_error() makes: the text in Fault::text, a load_error message
 * on the to_host doorbell, exit with kHelperExitBadSetup (the host accepts either the message or
 * the exit status with text, whichever it sees first). The helper has not sent anything yet, so
 * the doorbell is ours to ring. */
__attribute__((noreturn, format(printf, 1, 2))) static void refuse(const char *fmt, ...) {
  unsigned char *ctl = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE, MAP_SHARED, 3, 0);
  if (ctl != MAP_FAILED) {
    char text[WARD_FAULT_TEXT_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    memcpy(ctl + WARD_CTL_FAULT_TEXT, text, sizeof text);
    const uint16_t kind = WARD_MSG_LOAD_ERROR;
    memcpy(ctl + WARD_CTL_TO_HOST_KIND, &kind, sizeof kind);
    uint32_t *seq = (uint32_t *)(void *)(ctl + WARD_CTL_TO_HOST_SEQ);
    uint32_t *sleeping = (uint32_t *)(void *)(ctl + WARD_CTL_TO_HOST_SLEEPING);
    __atomic_fetch_add(seq, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(sleeping, __ATOMIC_SEQ_CST) != 0) syscall(SYS_futex, seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
  }
  syscall(SYS_exit_group, WARD_EXIT_BAD_SETUP);
  __builtin_unreachable();
}

/* ---- reading what the loader acted on ------------------------------------------------------------ */

/* Copies n bytes at addr, or reports that they are not all mapped and readable (a plain read
 * would fault on a hostile object's unmapped header). Reading our own memory needs no privilege. */
static int read_mem(uintptr_t addr, void *out, size_t n) {
  struct iovec local = {.iov_base = out, .iov_len = n};
  struct iovec remote = {.iov_base = (void *)addr, .iov_len = n};
  return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)n;
}

static int read_file(const char *path, uint64_t off, void *out, size_t n) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  const ssize_t got = pread(fd, out, n, (off_t)off);
  close(fd);
  return got == (ssize_t)n;
}

/* The loader refuses more than this many program headers per object anyway (it reads them from
 * a small buffer or an allocation); the cap bounds our buffer. */
#define MAX_PHDRS 256

struct headers {
  Elf64_Ehdr eh;
  Elf64_Phdr ph[MAX_PHDRS];
};

static int ehdr_sane(const Elf64_Ehdr *eh) {
  return memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64 &&
         eh->e_phentsize == sizeof(Elf64_Phdr) && eh->e_phnum > 0 && eh->e_phnum <= MAX_PHDRS;
}

/* Headers describe the mapped object if their PT_DYNAMIC is where the loader found it. */
static int describes(const struct headers *h, const struct link_map *map) {
  for (unsigned i = 0; i < h->eh.e_phnum; ++i)
    if (h->ph[i].p_type == PT_DYNAMIC) return map->l_addr + h->ph[i].p_vaddr == (uintptr_t)map->l_ld;
  return 0;
}

/* The image at l_addr shows file offset 0 only if the PT_LOAD mapping offset 0 sits at vaddr 0,
 * and the program headers only if a PT_LOAD maps them at vaddr == offset. */
static int mapped_at_offset(const struct headers *h, uint64_t off, uint64_t len) {
  for (unsigned i = 0; i < h->eh.e_phnum; ++i) {
    const Elf64_Phdr *p = &h->ph[i];
    if (p->p_type == PT_LOAD && p->p_offset <= off && len <= p->p_filesz && off - p->p_offset <= p->p_filesz - len)
      return p->p_vaddr == p->p_offset;
  }
  return 0;
}

static int headers_from_memory(const struct link_map *map, struct headers *h) {
  if (!read_mem(map->l_addr, &h->eh, sizeof h->eh) || !ehdr_sane(&h->eh)) return 0;
  const size_t len = (size_t)h->eh.e_phnum * sizeof(Elf64_Phdr);
  if (h->eh.e_phoff > UINTPTR_MAX - map->l_addr) return 0;
  if (!read_mem(map->l_addr + h->eh.e_phoff, h->ph, len)) return 0;
  return mapped_at_offset(h, 0, sizeof h->eh) && mapped_at_offset(h, h->eh.e_phoff, len) && describes(h, map);
}

static int headers_from_file(const struct link_map *map, struct headers *h) {
  if (!map->l_name || !map->l_name[0]) return 0;
  if (!read_file(map->l_name, 0, &h->eh, sizeof h->eh) || !ehdr_sane(&h->eh)) return 0;
  return read_file(map->l_name, h->eh.e_phoff, h->ph, (size_t)h->eh.e_phnum * sizeof(Elf64_Phdr)) && describes(h, map);
}

/* DT_TEXTREL, or DF_TEXTREL in DT_FLAGS, in the dynamic section the loader reads. */
static int needs_text_relocations(const struct link_map *map, int *readable) {
  *readable = 1;
  for (uintptr_t at = (uintptr_t)map->l_ld;; at += sizeof(Elf64_Dyn)) {
    Elf64_Dyn d;
    if (!read_mem(at, &d, sizeof d)) {
      *readable = 0;
      return 0;
    }
    if (d.d_tag == DT_NULL) return 0;
    if (d.d_tag == DT_TEXTREL || (d.d_tag == DT_FLAGS && (d.d_un.d_val & DF_TEXTREL))) return 1;
  }
}

/* ---- the checks ------------------------------------------------------------------------------ */

static void check_object(const struct link_map *map) {
  const char *name = map->l_name && map->l_name[0] ? map->l_name : "(unnamed object)";
  static struct headers h; /* large; the loader's stack is not ours to spend */
  if (!headers_from_memory(map, &h) && !headers_from_file(map, &h))
    refuse("refused %s: cannot read the program headers the loader used", name);
  /* Without PT_GNU_STACK the loader assumes the object needs an executable stack (x86-64's
   * default), so its absence is refused like PF_X. */
  int has_stack_header = 0;
  for (unsigned i = 0; i < h.eh.e_phnum; ++i) {
    const Elf64_Phdr *p = &h.ph[i];
    if (p->p_type == PT_GNU_STACK) {
      has_stack_header = 1;
      if (p->p_flags & PF_X) refuse("refused %s: it asks for an executable stack (PT_GNU_STACK with PF_X)", name);
    }
    if (p->p_type == PT_LOAD && (p->p_flags & PF_W) && (p->p_flags & PF_X))
      refuse("refused %s: it has a segment that is writable and executable (PT_LOAD at 0x%llx with PF_W|PF_X)", name,
             (unsigned long long)p->p_vaddr);
  }
  if (!has_stack_header)
    refuse("refused %s: it asks for an executable stack (no PT_GNU_STACK header: the loader's default is executable)",
           name);
  int readable;
  if (needs_text_relocations(map, &readable))
    refuse("refused %s: it needs text relocations (DT_TEXTREL: the loader would make its code writable)", name);
  if (!readable) refuse("refused %s: its dynamic section is not readable", name);
}

/* The effect, whatever the headers said: no mapping may be writable and executable, and the
 * stack not executable, when the filter goes on. */
static void check_mappings(void) {
  const int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) refuse("refused the plugin: cannot check the process's mappings (/proc/self/maps)");
  static char buf[8192];
  static char line[4352];
  size_t len = 0;
  for (;;) {
    const ssize_t got = read(fd, buf, sizeof buf);
    if (got < 0) refuse("refused the plugin: cannot check the process's mappings (/proc/self/maps)");
    if (got == 0) break;
    for (ssize_t i = 0; i < got; ++i) {
      if (buf[i] != '\n') {
        if (len + 1 < sizeof line) line[len++] = buf[i]; /* a longer path is cut; perms come first */
        continue;
      }
      line[len] = '\0';
      /* "start-end perms offset dev inode   path": the second field is "rwxp"-style. */
      const char *perms = strchr(line, ' ');
      if (perms && strlen(perms) >= 5) {
        const int w = perms[2] == 'w', x = perms[3] == 'x';
        const char *path = strchr(line, '/');
        if (!path) path = strchr(line, '[');
        if (x && strstr(line, "[stack]")) refuse("refused the plugin: the stack became executable while loading it");
        if (w && x) refuse("refused the plugin: a mapping is writable and executable after loading it (%s)", path ? path : line);
      }
      len = 0;
    }
  }
  close(fd);
}

unsigned int la_objopen(struct link_map *map, Lmid_t lmid, uintptr_t *cookie) {
  (void)lmid;
  (void)cookie;
  const char *want = getenv("WARD_PLUGIN");
  if (want && map->l_name && strcmp(map->l_name, want) == 0) armed = 1;
  if (armed && !installed) check_object(map);
  return 0; /* no symbol-binding audit: keeps calls through the PLT at full speed */
}

static void install_or_die(void) {
  const long page = sysconf(_SC_PAGESIZE);
  /* Map the control page first to learn where the filter lies, then map up to its end. */
  const unsigned char *ctl = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, 3, 0);
  if (ctl == MAP_FAILED) _exit(WARD_EXIT_BAD_SETUP);
  uint32_t len;
  uint64_t off;
  memcpy(&len, ctl + WARD_CTL_FILTER_LEN, sizeof len);
  memcpy(&off, ctl + WARD_CTL_FILTER_OFF, sizeof off);
  munmap((void *)ctl, (size_t)page);
  if (len == 0 || len > 65535) _exit(WARD_EXIT_BAD_SETUP);
  const size_t span = (size_t)off + (size_t)len * sizeof(struct sock_filter);
  const unsigned char *base = mmap(NULL, span, PROT_READ, MAP_SHARED, 3, 0);
  if (base == MAP_FAILED) _exit(WARD_EXIT_BAD_SETUP);
  struct sock_fprog prog = {.len = (unsigned short)len, .filter = (struct sock_filter *)(base + off)};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(WARD_EXIT_BAD_SETUP);
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) _exit(WARD_EXIT_BAD_SETUP);
  /* The kernel copied the program; the mapping is no longer needed (and munmap is allowed). */
  munmap((void *)base, span);
  installed = 1;
}

void la_activity(uintptr_t *cookie, unsigned int flag) {
  (void)cookie;
  if (flag == LA_ACT_CONSISTENT && armed && !installed) {
    check_mappings();
    install_or_die();
  }
}
