#include "suggest.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <numeric>

namespace ward::cli {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // Three rows of the dynamic programme: the swap looks two rows back.
  std::vector<std::size_t> prev2(b.size() + 1), prev(b.size() + 1), row(b.size() + 1);
  std::iota(prev.begin(), prev.end(), std::size_t{0});
  for (std::size_t i = 1; i <= a.size(); ++i) {
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      row[j] = std::min({prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) row[j] = std::min(row[j], prev2[j - 2] + 1);
    }
    std::swap(prev2, prev);
    std::swap(prev, row);
  }
  return prev[b.size()];
}

std::optional<std::string> nearest(std::string_view typed, const std::vector<std::string>& candidates) {
  // Dashes carry no meaning for closeness: `-kills` and `--kills` are the same intent.
  auto bare = [](std::string_view s) {
    while (!s.empty() && s.front() == '-') s.remove_prefix(1);
    return s;
  };
  const std::string_view t = bare(typed);
  if (t.empty()) return std::nullopt;
  for (const auto& c : candidates)
    if (bare(c).starts_with(t)) return c;
  // Close enough to be a typo of it, and not a replacement of every letter (`-x` is not `-h`).
  const std::size_t limit = std::min(std::max<std::size_t>(1, t.size() / 3), t.size() - 1);
  std::optional<std::string> best;
  std::size_t best_d = limit + 1;
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(t, bare(c));
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

std::vector<std::string> subcommand_names(const CLI::App& app) {
  std::vector<std::string> out;
  for (const CLI::App* s : app.get_subcommands([](const CLI::App*) { return true; })) out.push_back(s->get_name());
  return out;
}

std::vector<std::string> option_names(const CLI::App& app) {
  std::vector<std::string> out;
  for (const CLI::Option* o : app.get_options()) {
    if (o->get_positional() && o->get_lnames().empty() && o->get_snames().empty()) continue;
    for (const auto& l : o->get_lnames()) out.push_back("--" + l);
    for (const auto& s : o->get_snames()) out.push_back("-" + s);
  }
  return out;
}

namespace {

const CLI::App* find_subcommand(const CLI::App& app, const std::string& name) {
  for (const CLI::App* s : app.get_subcommands([](const CLI::App*) { return true; }))
    if (s->check_name(name)) return s;
  return nullptr;
}

bool has_positionals(const CLI::App& app) {
  for (const CLI::Option* o : app.get_options())
    if (o->get_positional() && o->get_lnames().empty() && o->get_snames().empty()) return true;
  return false;
}

// An option named `name` on `app` or, for commands that pass unknown options up, its parents.
const CLI::Option* find_option(const CLI::App* app, const std::string& name) {
  for (; app; app = app->get_fallthrough() ? app->get_parent() : nullptr)
    if (const CLI::Option* o = app->get_option_no_throw(name)) return o;
  return nullptr;
}

}  // namespace

std::optional<Unknown> find_unknown(const CLI::App& root, int argc, const char* const* argv) {
  const CLI::App* cur = &root;
  std::string command = "ward";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") return std::nullopt;  // the rest belongs to someone else (ward fuse's FS-COMMAND)
    const bool is_option = a.size() > 1 && a[0] == '-' && !(a[1] >= '0' && a[1] <= '9');
    if (is_option) {
      const bool long_form = a.starts_with("--");
      // `--name=value`, and `-qv` (only its first letter can tell whether it is known).
      const std::string name = long_form ? a.substr(0, a.find('=')) : a.substr(0, 2);
      const CLI::Option* o = find_option(cur, name);
      if (!o) {
        Unknown u{name, command, true, option_names(*cur), std::nullopt};
        u.meant = nearest(name, u.valid);
        return u;
      }
      const bool value_attached = long_form ? a.find('=') != std::string::npos : a.size() > 2;
      if (o->get_type_size_max() > 0 && !value_attached) ++i;  // its value is the next word
      continue;
    }
    if (const CLI::App* sub = find_subcommand(*cur, a)) {
      cur = sub;
      command += " " + sub->get_name();
      continue;
    }
    if (has_positionals(*cur)) continue;
    if (subcommand_names(*cur).empty()) return std::nullopt;  // an extra word: CLI11 says it well
    Unknown u{a, command, false, subcommand_names(*cur), std::nullopt};
    u.meant = nearest(a, u.valid);
    return u;
  }
  return std::nullopt;
}

std::string explain(const CLI::App& root, int argc, const char* const* argv, const CLI::ParseError& e) {
  if (auto u = find_unknown(root, argc, argv)) return describe(*u) + fmt::format("Run '{} --help' for usage.\n", u->command);
  // The command CLI11 was parsing when it failed: the last one chosen at each level.
  const CLI::App* cur = &root;
  std::string command = "ward";
  while (!cur->get_subcommands().empty()) {
    cur = cur->get_subcommands().back();
    command += " " + cur->get_name();
  }
  std::string what = e.what();
  const auto subs = subcommand_names(*cur);
  if (e.get_name() == "RequiredError" && !subs.empty() && cur->get_subcommands().empty())
    what = fmt::format("a command is required: {}", fmt::join(subs, ", "));
  return fmt::format("{}: {}\nRun '{} --help' for usage.\n", command, what, command);
}

std::string describe(const Unknown& u) {
  std::string s = fmt::format("{}: unknown {} '{}'", u.command, u.option ? "option" : "command", u.word);
  if (u.meant)
    s += fmt::format("; did you mean '{}'?\n", *u.meant);
  else
    s += fmt::format("; {} are: {}\n", u.option ? "its options" : "its commands", fmt::join(u.valid, ", "));
  return s;
}

}  // namespace ward::cli
