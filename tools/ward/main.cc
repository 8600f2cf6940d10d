// ward: the command-line tool. `ward --help` lists the subcommands; each has its own --help.
#include <CLI/CLI.hpp>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"ward: keeps extensible software alive when its extensions fail"};
  app.set_version_flag("--version", "ward 0.1.0");
  app.require_subcommand(1);
  int exit_code = 0;
  ward::cli::add_demo(app, exit_code);
  ward::cli::add_rio(app, exit_code);
  ward::cli::add_fuse(app, exit_code);
  ward::cli::add_gen(app, exit_code);
  auto* bench = app.add_subcommand("bench", "Benchmarks: each figure beside its physical floor, with the ratio");
  bench->require_subcommand(1);
  ward::cli::add_bench_xpc(*bench, exit_code);
  ward::cli::add_bench_recovery(*bench, exit_code);
  ward::cli::add_bench_rio(*bench, exit_code);
  ward::cli::add_bench_events(*bench, exit_code);
  ward::cli::add_bench_lib(*bench, exit_code);
  ward::cli::add_bench_fuse(*bench, exit_code);
  ward::cli::add_bench_soak(*bench, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
