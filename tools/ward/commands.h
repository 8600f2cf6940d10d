// The subcommands of the `ward` CLI, one file each. Each returns the process exit code.
#pragma once

#include <CLI/CLI.hpp>

namespace ward::cli {

// `ward bench xpc`
void add_bench_xpc(CLI::App& bench, int& exit_code);
// `ward bench recovery`
void add_bench_recovery(CLI::App& bench, int& exit_code);
// `ward rio inspect|recover|torture`
void add_rio(CLI::App& app, int& exit_code);
// `ward bench rio`
void add_bench_rio(CLI::App& bench, int& exit_code);
// `ward bench events`
void add_bench_events(CLI::App& bench, int& exit_code);
// `ward bench lib`
void add_bench_lib(CLI::App& bench, int& exit_code);
// `ward bench fuse`
void add_bench_fuse(CLI::App& bench, int& exit_code);
// `ward bench soak`
void add_bench_soak(CLI::App& bench, int& exit_code);
// `ward fuse`
void add_fuse(CLI::App& app, int& exit_code);
// `ward demo`
void add_demo(CLI::App& app, int& exit_code);
// `ward gen`
void add_gen(CLI::App& app, int& exit_code);

}  // namespace ward::cli
