#include "ward/backend/find_library.h"

#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace ward {
namespace {

void add_dir(std::vector<std::string>& dirs, std::set<std::string>& seen, std::string d) {
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  if (!d.empty() && seen.insert(d).second) dirs.push_back(std::move(d));
}

// One ld.so.conf file: directory lines, comments after '#', and `include GLOB` lines (relative
// globs are relative to the including file's directory). `depth` stops include cycles.
void read_conf(const std::string& file, std::vector<std::string>& dirs, std::set<std::string>& seen, int depth) {
  if (depth > 8) return;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::string first;
    if (!(words >> first)) continue;
    if (first != "include") {
      add_dir(dirs, seen, first);
      continue;
    }
    std::string pattern;
    while (words >> pattern) {
      if (pattern.front() != '/') pattern = file.substr(0, file.rfind('/') + 1) + pattern;
      glob_t g{};
      if (glob(pattern.c_str(), 0, nullptr, &g) == 0)
        for (std::size_t i = 0; i < g.gl_pathc; ++i) read_conf(g.gl_pathv[i], dirs, seen, depth + 1);
      globfree(&g);
    }
  }
}

bool readable_file(const std::string& p) {
  struct stat sb {};
  return ::stat(p.c_str(), &sb) == 0 && S_ISREG(sb.st_mode) && access(p.c_str(), R_OK) == 0;
}

}  // namespace

std::vector<std::string> library_search_path() {
  std::vector<std::string> dirs;
  std::set<std::string> seen;
  if (const char* env = std::getenv("LD_LIBRARY_PATH")) {
    std::istringstream parts(env);
    std::string d;
    while (std::getline(parts, d, ':')) add_dir(dirs, seen, d.empty() ? "." : d);
  }
  read_conf("/etc/ld.so.conf", dirs, seen, 0);
  for (const char* d : {"/lib64", "/usr/lib64", "/lib", "/usr/lib"}) add_dir(dirs, seen, d);
  return dirs;
}

Result<std::string> find_library(const std::string& name) {
  if (name.empty()) return fail(Errc::load_failed, "no library name given");
  if (name.find('/') != std::string::npos) return name;
  std::string searched;
  for (const std::string& d : library_search_path()) {
    const std::string p = d + "/" + name;
    if (readable_file(p)) return p;
    searched += (searched.empty() ? "" : ", ") + d;
  }
  return fail(Errc::load_failed, "library '" + name + "' not found in " + searched);
}

}  // namespace ward
