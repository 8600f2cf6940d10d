// For tests: kills a supervised extension at random moments while the test's own thread works
// through it. The next kill waits until the last one was recovered from and the test reported a
// unit of work done after that (progress()), so every kill ends a live instance that got to do
// some work, and kills land both between and during calls. Stops (and joins) when destroyed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <thread>

namespace ward_test {

template <class Ext>
class RandomKills {
 public:
  // Ext: an Extension<Api> (kill(), stats().restarts). Gaps before each kill: up to max_gap.
  RandomKills(Ext& ext, std::uint32_t seed, std::chrono::microseconds max_gap)
      : thread_([this, &ext, seed, max_gap] {
          std::mt19937 rng(seed);
          while (!stop_.load()) {
            std::this_thread::sleep_for(std::chrono::microseconds(rng() % max_gap.count()));
            const std::uint64_t restarts = ext.stats().restarts;
            ext.kill();
            ++kills_;
            wait([&] { return ext.stats().restarts > restarts; });
            const std::uint64_t at = done_.load();
            wait([&] { return done_.load() > at; });
          }
        }) {}
  ~RandomKills() { stop(); }
  RandomKills(const RandomKills&) = delete;
  RandomKills& operator=(const RandomKills&) = delete;

  void progress() { ++done_; }
  [[nodiscard]] std::uint64_t kills() const { return kills_.load(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  template <class Until>
  void wait(Until until) {
    while (!stop_.load() && !until()) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> kills_{0}, done_{0};
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace ward_test
