// ward: the command-line tool. `ward --help` lists the subcommands; each has its own --help.
// `ward man` and `ward completion bash` are generated from the same help texts (manual.h).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <string>

#include "commands.h"
#include "manual.h"
#include "plot.h"
#include "report.h"
#include "suggest.h"

namespace {

constexpr const char* kVersion = "ward 0.1.0";

// The exit codes every command keeps; `ward --help`, the man page and docs/results.md say this.
constexpr const char* kExitCodes =
    "Exit codes: 0 success (also --help and --version). 1 the command ran and found a failure, or "
    "could not finish: each command's --help says which. 2 the command line was not understood: an "
    "unknown command or option (ward names it and suggests the nearest valid one), a missing or "
    "bad value; `ward rio` also uses 2 for a region it cannot open. 3 ward rio recover: data kept "
    "in the region; ward fuse: the file system failed. 128+N: interrupted by signal N.";

// `--plot DIR` on every `ward bench` command, in one place: the table print() writes is drawn
// there too (plot.h). A chart that cannot be drawn sets `failed`: the run exits 1 (the command's
// own exit code is set after its table is printed, so main applies it).
void add_plot(CLI::App& bench, bool& failed) {
  static std::string dir, name;
  for (CLI::App* sub : bench.get_subcommands([](CLI::App*) { return true; })) {
    const std::string n = sub->get_name();
    sub->add_option_function<std::string>(
           "--plot", [n](const std::string& d) { dir = d, name = n; },
           "Also draw each table as a chart (SVG and PNG, with gnuplot) into this directory: every "
           "figure beside its floor, the ratio written on it")
        ->type_name("DIR");
  }
  ward::bench::on_table([&failed](const std::vector<ward::bench::Row>& rows) {
    if (dir.empty()) return;
    auto files = ward::cli::plot_table(rows, dir, name);
    if (!files) {
      fmt::print(stderr, "ward bench {} --plot: {}\n", name, files.error().detail);
      failed = true;
      return;
    }
    if (files->empty()) fmt::print(stderr, "ward bench {} --plot: no row has a floor; nothing drawn\n", name);
    for (const auto& f : *files) fmt::print(stderr, "ward bench {}: wrote {}\n", name, f);
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ward: keeps extensible software alive when its extensions fail"};
  app.footer(kExitCodes);
  app.set_version_flag("--version", kVersion);
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
  bool plot_failed = false;
  add_plot(*bench, plot_failed);
  ward::cli::add_manual(app, kVersion, kExitCodes, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --version: printed, exit 0
  } catch (const CLI::ParseError& e) {
    // Every command line ward does not understand exits 2, with the culprit named.
    fmt::print(stderr, "{}", ward::cli::explain(app, argc, argv, e));
    return 2;
  }
  return exit_code == 0 && plot_failed ? 1 : exit_code;
}
