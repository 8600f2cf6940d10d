// Where the CLI finds the example plugins: $WARD_PLUGIN_DIR, `plugins/` next to the ward
// executable, the installed layout relative to it (bin -> libexec/ward/plugins), then the build
// directory recorded at compile time.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

namespace ward::cli {

inline std::string plugin_path(const std::string& name) {
  const std::string file = "lib" + name + ".so";
  if (const char* env = std::getenv("WARD_PLUGIN_DIR"); env && *env) return std::string(env) + "/" + file;
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const auto p = self.parent_path() / "plugins" / file;
    if (std::filesystem::exists(p, ec)) return p.string();
#ifdef WARD_BINDIR_TO_PLUGINS
    const auto installed = self.parent_path() / WARD_BINDIR_TO_PLUGINS / file;
    if (std::filesystem::exists(installed, ec)) return installed.lexically_normal().string();
#endif
  }
  return std::string(WARD_PLUGIN_DIR) + "/" + file;
}

}  // namespace ward::cli
