// A LADSPA audio plugin, unmodified, running in a ward sandbox.
//
//   build/ward-example-ladspa [/usr/lib/ladspa/amp.so [label]]
//
// The plugin is a stock .so from Debian's ladspa-sdk. The host side is the declaration in
// ladspa_ward.h (about 30 lines: which descriptor fields are strings, arrays and functions, and
// how each function's pointers are used); everything below is what any LADSPA host does, spelled
// as in C, with ward's results checked.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "ladspa/ladspa_ward.h"

namespace {

int fail(const char* what, const ward::Error& e) {
  std::fprintf(stderr, "%s: %s\n", what, e.message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : "/usr/lib/ladspa/amp.so";
  const std::string want = argc > 2 ? argv[2] : "amp_mono";
  constexpr unsigned long kRate = 44100, kBlock = 8;

  // 1. Load the plugin into its own process (no file, network or process syscalls allowed).
  auto lib = ward::Instance<ladspa_lib>::open(path);
  if (!lib) return fail("load", lib.error());

  // 2. Find the plugin by label. Each descriptor comes back as a host-side deep copy: its strings
  //    and port arrays were checked on the way; the plugin cannot change them afterwards.
  for (unsigned long i = 0;; ++i) {
    auto r = (*lib)->ladspa_descriptor(i);
    if (!r) return fail("ladspa_descriptor", r.error());
    const ward::Deep<LADSPA_Descriptor>& d = r->unverified_value_i_trust_it();
    if (!d) {
      std::fprintf(stderr, "%s has no plugin labelled %s\n", path.c_str(), want.c_str());
      return 1;
    }
    if (want != d->Label) continue;

    std::printf("Plugin \"%s\" (%s) by %s, %lu ports:\n", d->Name, d->Label, d->Maker, d->PortCount);
    for (unsigned long p = 0; p < d->PortCount; ++p) {
      const LADSPA_PortDescriptor k = d->PortDescriptors[p];
      std::printf("  port %lu: %-6s %-7s %s\n", p, LADSPA_IS_PORT_INPUT(k) ? "input" : "output",
                  LADSPA_IS_PORT_AUDIO(k) ? "audio" : "control", d->PortNames[p]);
    }

    // 3. Ports are buffers the plugin keeps between calls: they live in sandbox memory.
    std::vector<ward::Sandboxed<float>> ports;
    for (unsigned long p = 0; p < d->PortCount; ++p) {
      auto buf = lib->alloc<float>(LADSPA_IS_PORT_AUDIO(d->PortDescriptors[p]) ? kBlock : 1);
      if (!buf) return fail("alloc", buf.error());
      ports.push_back(std::move(*buf));
    }

    // 4. Instantiate and connect through the descriptor's own function pointers. The handle is
    //    an opaque token: the plugin's real pointer never reaches this process.
    auto obj = d.object();
    auto h = obj->instantiate(nullptr, kRate);
    if (!h) return fail("instantiate", h.error());
    for (unsigned long p = 0; p < d->PortCount; ++p) {
      const LADSPA_PortDescriptor k = d->PortDescriptors[p];
      if (LADSPA_IS_PORT_CONTROL(k) && LADSPA_IS_PORT_INPUT(k)) {
        if (auto w = ports[p].write(0.5f); !w) return fail("write", w.error());  // e.g. a gain of 0.5
        std::printf("Setting %s to 0.5\n", d->PortNames[p]);
      }
      if (auto c = obj->connect_port(*h, p, ports[p]); !c) return fail("connect_port", c.error());
    }
    if (d.has<&LADSPA_Descriptor::activate>())
      if (auto a = obj->activate(*h); !a) return fail("activate", a.error());

    // 5. Run one buffer of a sine wave through it and print what came out.
    for (unsigned long p = 0; p < d->PortCount; ++p)
      if (LADSPA_IS_PORT_AUDIO(d->PortDescriptors[p]) && LADSPA_IS_PORT_INPUT(d->PortDescriptors[p]))
        for (unsigned long s = 0; s < kBlock; ++s)
          if (auto w = ports[p].write(s, static_cast<float>(std::sin(s * 0.7))); !w) return fail("write", w.error());
    if (auto r2 = obj->run(*h, kBlock); !r2) return fail("run", r2.error());

    std::printf("%8s %10s %10s\n", "sample", "in", "out");
    for (unsigned long s = 0; s < kBlock; ++s) {
      std::printf("%8lu %10.4f", s, std::sin(s * 0.7));
      for (unsigned long p = 0; p < d->PortCount; ++p)
        if (LADSPA_IS_PORT_AUDIO(d->PortDescriptors[p]) && LADSPA_IS_PORT_OUTPUT(d->PortDescriptors[p])) {
          // read(): a checked copy of what the plugin wrote, marked as coming from it.
          auto v = ports[p].read(s);
          if (!v) return fail("read", v.error());
          std::printf(" %10.4f", v->unverified_value_i_trust_it());
        }
      std::printf("\n");
    }
    if (d.has<&LADSPA_Descriptor::deactivate>()) (void)obj->deactivate(*h);
    (void)obj->cleanup(*h);
    std::printf("Done: the plugin ran in a sandboxed child process.\n");
    return 0;
  }
}
