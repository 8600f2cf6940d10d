// Test helper shared by the recovery tests: an EventSink that records every RecoveryEvent.
#pragma once

#include <algorithm>
#include <mutex>
#include <optional>
#include <vector>

#include "ward/recovery/supervisor.h"

namespace ward_test {

struct Events {
  std::mutex mu;
  std::vector<ward::RecoveryEvent> seen;
  ward::EventSink sink() {
    return [this](const ward::RecoveryEvent& e) {
      std::lock_guard<std::mutex> g(mu);
      seen.push_back(e);
    };
  }
  int count(ward::EventKind k) {
    std::lock_guard<std::mutex> g(mu);
    return static_cast<int>(std::count_if(seen.begin(), seen.end(), [&](const ward::RecoveryEvent& e) { return e.kind == k; }));
  }
  std::optional<ward::RecoveryEvent> first(ward::EventKind k) {
    std::lock_guard<std::mutex> g(mu);
    for (auto& e : seen)
      if (e.kind == k) return e;
    return std::nullopt;
  }
  void clear() {
    std::lock_guard<std::mutex> g(mu);
    seen.clear();
  }
};

}  // namespace ward_test
