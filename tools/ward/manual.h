// The CLI's help text in two more forms, generated from the same CLI11 App tree as `--help` so
// that none of them can drift: a man page (roff, section 1) and a bash completion script.
//
// Both walk every command, its subcommands, options (with their value type and default) and
// positionals. Pure functions of the tree; `exit_codes` is the EXIT STATUS section's text.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace ward::cli {

// The whole manual page, `man -l`-ready: NAME, SYNOPSIS, DESCRIPTION, one subsection per command
// (depth first, in the order added) with its options, EXIT STATUS, SEE ALSO.
std::string man_page(const CLI::App& root, const std::string& version, const std::string& exit_codes);

// A bash script defining a completion function for `ward` (`complete -F`): subcommands at each
// level, the options of the command typed so far, file names for option values and positionals.
std::string bash_completion(const CLI::App& root);

// Adds `ward man` and `ward completion bash` to `root`; call after every other command is added
// (the walk sees only what exists when it runs, which is at parse time, so order does not matter
// for their content, only for where they appear in --help).
void add_manual(CLI::App& root, const std::string& version, const std::string& exit_codes, int& exit_code);

}  // namespace ward::cli
