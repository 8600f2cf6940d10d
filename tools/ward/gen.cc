// `ward gen HEADER [--functions f,g] [--name LIB] [--include SPELLING] [-- CLANG-ARGS]`: prints
// the ward declaration of a C library's functions, inferred from its own header (src/gen/gen.h,
// docs/gen.md). Exit 0 with the declaration on stdout (markers included: they fail the build,
// not this command); exit 1 with the reason on stderr when the header cannot be read or names
// no such function.
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "gen/gen.h"

namespace ward::cli {

void add_gen(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "gen",
      "Writes the ward declaration (WARD_LIBRARY) of a C library's functions from its own header, to stdout. "
      "Infers strings (const char *), sized buffers (a pointer then a size_t), T ** out-parameters, callbacks "
      "with a void * user data, opaque struct pointers and enum ranges; every pointer it cannot decide becomes "
      "ward::undecided<\"question\">, a compile-time error that says what to declare (docs/gen.md). "
      "Arguments after -- go to libclang (-I, -D).");
  struct Args {
    ward::gen::Options opts;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("header", args->opts.header, "The C header to read")->required();
  cmd->add_option("--functions", args->opts.functions,
                  "Functions to declare, comma-separated (default: every function the header itself declares)")
      ->delimiter(',');
  cmd->add_option("--name", args->opts.name, "The WARD_LIBRARY's name (default: the header's file name + _lib)");
  cmd->add_option("--include", args->opts.include,
                  "The #include argument for the header, e.g. '<libxml/parser.h>' (default: relative to -I or "
                  "/usr/include)");
  // Everything after `--` is libclang's (-I, -D, -std=...), passed through untouched.
  cmd->allow_extras();
  cmd->callback([cmd, args, &exit_code] {
    for (const std::string& a : cmd->remaining()) {
      if (a != "--") args->opts.clang_args.push_back(a);
    }
    auto g = ward::gen::generate(args->opts);
    if (!g) {
      std::fprintf(stderr, "%s\n", g.error().detail.c_str());
      exit_code = 1;
      return;
    }
    std::fwrite(g->text.data(), 1, g->text.size(), stdout);
    if (g->undecided) std::fprintf(stderr, "ward gen: %d pointer(s) left undecided (ward::undecided markers)\n", g->undecided);
    exit_code = 0;
  });
}

}  // namespace ward::cli
