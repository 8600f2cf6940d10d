// /proc/self/mountinfo, read (mountinfo.h has the contract).
#include "fuse/mountinfo.h"

#include <fstream>
#include <sstream>

namespace ward::fuse::detail {
namespace {

std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto octal = [&](std::size_t k) { return s[k] >= '0' && s[k] <= '7'; };
    if (s[i] == '\\' && s.size() - i >= 4 && octal(i + 1) && octal(i + 2) && octal(i + 3)) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

// Each line: "ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [TAGS...] - FSTYPE SOURCE SUPEROPTIONS".
std::vector<MountInfo> read_mountinfo() {
  std::vector<MountInfo> out;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string id, parent, word, source;
    MountInfo m;
    if (!(words >> id >> parent >> m.dev >> m.root >> m.mountpoint)) continue;
    while (words >> word && word != "-") {}
    if (!(words >> m.fstype)) continue;
    words >> source >> m.superopts;
    m.root = unescape(m.root);
    m.mountpoint = unescape(m.mountpoint);
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace ward::fuse::detail
