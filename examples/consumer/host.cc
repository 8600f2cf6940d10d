// A program outside ward's tree, built against an installed ward: it runs its own plugin
// (libcounter.so) in a sandboxed child under a Supervisor, crosses into it, lets it crash and
// shows the next call running on a fresh instance. Exits 0 only if all of that happened.
//
//   consumer [PATH/TO/libcounter.so]     (default: libcounter.so beside the executable)
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "counter.h"
#include "ward/ward.h"

WARD_LIBRARY(counter_lib, (counter_bump), (counter_crash));

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  std::string plugin = argc > 1 ? argv[1] : "";
  if (plugin.empty()) plugin = (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "libcounter.so").string();

  auto policy = ward::Policy::builder().timeout(2s).build();
  if (!policy) return std::fprintf(stderr, "policy: %s\n", policy.error().message().c_str()), 1;
  ward::Supervisor sup;
  auto counter = sup.open<counter_lib>(plugin, *policy);
  if (!counter) return std::fprintf(stderr, "open: %s\n", counter.error().message().c_str()), 1;

  auto first = (**counter)->counter_bump(2);
  if (!first) return std::fprintf(stderr, "bump: %s\n", first.error().message().c_str()), 1;
  std::printf("counter_bump(2) in pid %d's sandbox = %ld\n", ward::pid_of((*counter)->domain()), first->unverified_value_i_trust_it());

  auto crash = (**counter)->counter_crash(1);
  if (crash) return std::fprintf(stderr, "counter_crash returned instead of crashing\n"), 1;
  std::printf("counter_crash(1): %s\n", crash.error().message().c_str());

  // The crash was the plugin's alone: this process goes on, and the next call runs on a fresh
  // instance (whose counter starts again from zero).
  auto after = (**counter)->counter_bump(5);
  if (!after) return std::fprintf(stderr, "bump after the crash: %s\n", after.error().message().c_str()), 1;
  std::printf("counter_bump(5) after %llu restart(s) = %ld\n",
              static_cast<unsigned long long>((*counter)->stats().restarts), after->unverified_value_i_trust_it());
  return crash.error().kind == ward::Errc::crashed && (*counter)->stats().restarts == 1 ? 0 : 1;
}
