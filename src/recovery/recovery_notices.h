// Test helper shared by the recovery tests: a NoticeSink that records every RecoveryNotice.
#pragma once

#include <algorithm>
#include <mutex>
#include <optional>
#include <vector>

#include "ward/recovery/supervisor.h"

namespace ward_test {

struct Notices {
  std::mutex mu;
  std::vector<ward::RecoveryNotice> seen;
  ward::NoticeSink sink() {
    return [this](const ward::RecoveryNotice& n) {
      std::lock_guard<std::mutex> g(mu);
      seen.push_back(n);
    };
  }
  int count(ward::NoticeKind k) {
    std::lock_guard<std::mutex> g(mu);
    return static_cast<int>(
        std::count_if(seen.begin(), seen.end(), [&](const ward::RecoveryNotice& n) { return n.kind == k; }));
  }
  std::optional<ward::RecoveryNotice> first(ward::NoticeKind k) {
    std::lock_guard<std::mutex> g(mu);
    for (auto& n : seen)
      if (n.kind == k) return n;
    return std::nullopt;
  }
  void clear() {
    std::lock_guard<std::mutex> g(mu);
    seen.clear();
  }
};

}  // namespace ward_test
