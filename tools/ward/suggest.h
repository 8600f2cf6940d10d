// What the user meant: the nearest valid name to a mistyped command or option, and the first
// word of a command line that no command at its level knows.
//
// Used only after CLI11 has rejected a command line, to name the culprit and suggest a fix; a
// walk that cannot decide returns nothing and the caller prints CLI11's own message. Pure
// functions over a const App tree: no state, safe from any thread.
#pragma once

#include <CLI/CLI.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ward::cli {

// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
// neighbours (the common typo) each cost 1.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate `typed` most plausibly meant: one it is a prefix of, else the nearest within
// max(1, |typed| / 3) edits (and fewer than
// |typed|); ties go to the earlier candidate. None when nothing is that close.
std::optional<std::string> nearest(std::string_view typed, const std::vector<std::string>& candidates);

// The first word of argv (argv[0] excluded) that the command it was given to does not know.
struct Unknown {
  std::string word;                     // as typed (an option without its `=value`)
  std::string command;                  // the command it was given to: "ward bench"
  bool option = false;                  // an option (else a subcommand)
  std::vector<std::string> valid;       // what that command accepts in its place
  std::optional<std::string> meant;     // nearest(word, valid)
};
std::optional<Unknown> find_unknown(const CLI::App& root, int argc, const char* const* argv);

// The message for `u`, ending in a newline: names the word, suggests `meant` or lists `valid`.
std::string describe(const Unknown& u);

// What to print for a command line CLI11 rejected with `e`: the unknown word and its nearest valid
// spelling when there is one, else CLI11's reason prefixed by the command it concerns; then a
// pointer to that command's --help. Ends in a newline.
std::string explain(const CLI::App& root, int argc, const char* const* argv, const CLI::ParseError& e);

// The names of `app`'s subcommands, in the order added.
std::vector<std::string> subcommand_names(const CLI::App& app);
// Every spelling of `app`'s options (`--long` and `-s`), positionals excluded.
std::vector<std::string> option_names(const CLI::App& app);

}  // namespace ward::cli
