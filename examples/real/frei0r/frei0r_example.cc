// A frei0r video filter, unmodified, running in a ward sandbox, next to the same filter run
// directly in this process.
//
//   build/ward-example-frei0r [plugin]      plugin: a name in /usr/lib/frei0r-1 (default invert0r)
//                                           or a path to a frei0r .so
//
// Prints the plugin's info and parameters (read through ward as deep copies), applies the filter
// to a generated 320x240 test pattern both ways and prints the two output checksums.
// Exit codes: 0 the outputs are identical, 1 a ward call or the direct run failed, 2 the outputs
// differ, 64 usage.
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "frei0r/frei0r_ward.h"

namespace {

constexpr unsigned kW = 320, kH = 240;

int fail(const char* what, const ward::Error& e) {
  std::fprintf(stderr, "%s: %s\n", what, e.message().c_str());
  return 1;
}

// FNV-1a over the frame's bytes.
std::uint64_t checksum(const std::uint32_t* px, std::size_t n) {
  std::uint64_t h = 1469598103934665603ull;
  const auto* b = reinterpret_cast<const unsigned char*>(px);
  for (std::size_t i = 0; i < n * 4; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

// Colour bars over a diagonal gradient, alpha opaque.
void pattern(std::uint32_t* px) {
  static constexpr std::uint32_t bars[] = {0xffffff, 0xffff00, 0x00ffff, 0x00ff00, 0xff00ff, 0xff0000, 0x0000ff};
  for (unsigned y = 0; y < kH; ++y)
    for (unsigned x = 0; x < kW; ++x) {
      const std::uint32_t grad = ((x + y) * 255 / (kW + kH)) * 0x010101u;
      px[y * kW + x] = 0xff000000u | (y < kH / 2 ? bars[x * 7 / kW] : grad);
    }
}

// The same filter run in this process (what the sandboxed output is compared with).
int direct_checksum(const std::string& path, std::uint64_t& sum) {
  void* so = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!so) return std::fprintf(stderr, "direct: %s\n", dlerror()), 1;
  auto sym = [so](const char* n) { return dlsym(so, n); };
  auto init = reinterpret_cast<decltype(&f0r_init)>(sym("f0r_init"));
  auto construct = reinterpret_cast<decltype(&f0r_construct)>(sym("f0r_construct"));
  auto update = reinterpret_cast<decltype(&f0r_update)>(sym("f0r_update"));
  auto destruct = reinterpret_cast<decltype(&f0r_destruct)>(sym("f0r_destruct"));
  auto deinit = reinterpret_cast<decltype(&f0r_deinit)>(sym("f0r_deinit"));
  if (!init || !construct || !update || !destruct || !deinit) return std::fprintf(stderr, "direct: not a frei0r plugin\n"), 1;
  init();
  std::vector<std::uint32_t> in(kW * kH), out(kW * kH);
  pattern(in.data());
  f0r_instance_t inst = construct(kW, kH);
  if (!inst) return std::fprintf(stderr, "direct: f0r_construct failed\n"), 1;
  update(inst, 0.0, in.data(), out.data());
  sum = checksum(out.data(), out.size());
  destruct(inst);
  deinit();
  dlclose(so);
  return 0;
}

const char* type_name(int t) {
  static constexpr const char* names[] = {"bool", "double", "color", "position", "string"};
  return t >= 0 && t <= F0R_PARAM_STRING ? names[t] : "?";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 2 || (argc == 2 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")))) {
    std::fprintf(argc > 2 ? stderr : stdout,
                 "usage: %s [plugin]\n"
                 "  Applies a frei0r filter (a name in /usr/lib/frei0r-1, default invert0r, or a path)\n"
                 "  to a 320x240 test pattern in a ward sandbox and directly; prints both checksums.\n"
                 "  exit: 0 identical, 1 error, 2 outputs differ, 64 usage\n",
                 argv[0]);
    return argc > 2 ? 64 : 0;
  }
  std::string path = argc > 1 ? argv[1] : "invert0r";
  if (path.find('/') == std::string::npos) {
    if (path.size() < 3 || path.compare(path.size() - 3, 3, ".so") != 0) path += ".so";
    path = "/usr/lib/frei0r-1/" + path;
  }

  // 1. Load the plugin into its own process; frames need sandbox memory (two 320x240 frames).
  auto policy = ward::Policy::builder().sandbox_memory(2ull << 20).build();
  if (!policy) return fail("policy", policy.error());
  auto lib = ward::Instance<frei0r_lib>::open(path, *policy);
  if (!lib) return fail("load", lib.error());
  auto ok = (*lib)->f0r_init();
  if (!ok) return fail("f0r_init", ok.error());

  // 2. The info struct: the plugin fills it with pointers to its own strings; ward copies them.
  ward::Deep<f0r_plugin_info_t> info;
  if (auto r = (*lib)->f0r_get_plugin_info(info.out()); !r) return fail("f0r_get_plugin_info", r.error());
  std::printf("%s %d.%d by %s (frei0r %d)\n  %s\n", info->name, info->major_version, info->minor_version,
              info->author, info->frei0r_version, info->explanation ? info->explanation : "");
  if (info->plugin_type != F0R_PLUGIN_TYPE_FILTER) {
    std::fprintf(stderr, "%s is not a filter (type %d)\n", info->name, info->plugin_type);
    return 1;
  }
  for (int p = 0; p < info->num_params; ++p) {
    ward::Deep<f0r_param_info_t> pi;
    if (auto r = (*lib)->f0r_get_param_info(pi.out(), p); !r) return fail("f0r_get_param_info", r.error());
    std::printf("  param %d: %-8s %s: %s\n", p, type_name(pi->type), pi->name, pi->explanation ? pi->explanation : "");
  }

  // 3. An instance (an opaque token) and two frames in sandbox memory, passed in place.
  auto inst = (*lib)->f0r_construct(kW, kH);
  if (!inst) return fail("f0r_construct", inst.error());
  auto in = lib->alloc<std::uint32_t>(kW * kH);
  auto out = lib->alloc<std::uint32_t>(kW * kH);
  if (!in || !out) return fail("alloc", !in ? in.error() : out.error());
  pattern(in->host_ptr());
  if (auto r = (*lib)->f0r_update(*inst, 0.0, *in, *out); !r) return fail("f0r_update", r.error());
  const std::uint64_t sandboxed = checksum(out->host_ptr(), kW * kH);
  if (auto r = (*lib)->f0r_destruct(*inst); !r) return fail("f0r_destruct", r.error());

  std::uint64_t direct = 0;
  if (int rc = direct_checksum(path, direct)) return rc;
  std::printf("checksum in ward: %016llx\nchecksum direct:  %016llx  %s\n", static_cast<unsigned long long>(sandboxed),
              static_cast<unsigned long long>(direct), sandboxed == direct ? "(identical)" : "(DIFFERENT)");
  return sandboxed == direct ? 0 : 2;
}
