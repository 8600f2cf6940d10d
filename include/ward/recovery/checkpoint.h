// Checkpoints: for a supervised extension whose state is costly to rebuild by replaying its log,
// a copy of the instance's state taken while it is idle; a recovery restores the copy into the
// fresh instance and replays only the calls logged after it. docs/architecture.md, "Checkpoints",
// has the scheme and its cost.
//
//   ward::RestartPolicy rp;
//   rp.checkpoint = {.heap_bytes = 64 << 20, .every_logged = 10000};
//   auto ext = ward::Supervisor(rp).load<model_api>("libmodel.so", "model_entry", policy);
//   ...
//   (void)(*ext)->checkpoint();   // or let every_logged take them
//
// What is captured (the process backend, src/helper/checkpoint.h): every allocation the plugin,
// its constructors and the dynamic linker loading it make (a heap of `heap_bytes` inside the
// arena, from which all of them are carved), and the writable data of the objects loaded with the
// plugin. The child of a checkpointable extension runs without address-space randomization, so
// every instance has the same layout and the copy's pointers stay valid; the seccomp filter is
// the same as any extension's (the plugin still cannot create processes: the copy is made by the
// helper's own code, writing its memory into the shared arena, never by forking).
//
// Not checkpointable, refused clearly:
//  - a Policy that lets the extension hold kernel state a copy of memory cannot carry (open
//    files, sockets, threads, processes: unsafe_allow_file_open / _sockets / _threads /
//    _process_creation): the Supervisor refuses to load it (misuse);
//  - a plugin (or a library it loads) with thread-local storage: checkpoint() fails (misuse);
//  - an instance holding host objects by handle (its handle table is not empty): checkpoint()
//    fails (misuse), because those objects are released with the instance;
//  - state kept inside libraries the helper itself loaded before the plugin (libc's rand() seed,
//    strtok's position, stdio buffers): not captured, not detected. A plugin keeping state there
//    is restored without it: keep such state in the plugin's own memory, or do not checkpoint.
//
// When ward takes one: only when asked (Extension::checkpoint()) or after `every_logged` calls
// have been logged since the last one (the call that reaches the count takes it, after it
// completed), and only while the extension is idle: callers are held back at admission until the
// calls in flight finish (at most the Policy's timeout, or the checkpoint gives up) and wait for
// the copy. Never during a recovery. The log before a checkpoint is dropped (host memory bounded
// by the live state: one copy of the instance's heap and data, plus the log since).
#pragma once

#include <cstdint>

namespace ward {

struct CheckpointPolicy {
  // Bytes of checkpointable heap: the most the extension may allocate (0: not checkpointable;
  // checkpoint() is then misuse). Mapped lazily: only what the extension uses costs memory, in
  // the child while it runs and in the host for the copy.
  std::uint64_t heap_bytes = 0;
  // Take a checkpoint after this many calls were logged since the last one (0: only on request).
  std::uint64_t every_logged = 0;
};

}  // namespace ward
