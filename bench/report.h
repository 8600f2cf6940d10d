// Shared machinery for every `ward bench` subcommand: run the registered Google Benchmarks,
// take the median of repetitions, and print one table (or one JSON array) in which each figure
// sits beside the floor it is compared with and the ratio between them.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <map>
#include <vector>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ward::bench {

struct Options {
  bool json = false;
  double min_time = 0.2;  // seconds per repetition
  int repetitions = 5;    // the median of these is reported
  std::string filter = ".";
};

// One line of output. `ratio` = value / floor's value.
struct Row {
  std::string name;
  double value = 0;
  std::string unit = "ns";
  std::optional<std::string> floor;
  std::optional<double> ratio;
  std::string note;
};

// Runs the benchmarks registered so far (matching opt.filter); returns the median real time per
// iteration in nanoseconds by benchmark name, and the error text for benchmarks that skipped.
struct Measured {
  std::map<std::string, double> ns;   // median
  std::map<std::string, double> p99;  // for benchmarks that register a "p99" statistic
  std::map<std::string, std::string> skipped;
  // A figure's unit when it is not ns per iteration (commands that time their own work, e.g.
  // `ward bench fuse`'s MB/s); compare() copies it into the row.
  std::map<std::string, std::string> unit;
};

// The 99th percentile of a benchmark's repetitions: `->ComputeStatistics("p99", bench::p99)`.
double p99(const std::vector<double>& v);
Measured run_registered(const Options& opt);

// Builds a row for `name` compared with `floor` (either may be missing from `m`).
std::optional<Row> compare(const Measured& m, const std::string& name, const std::optional<std::string>& floor,
                           std::string note = {});

// The rows of one `ward bench` report, in the order added. Borrows `m`, which must outlive it.
class Table {
 public:
  explicit Table(const Measured& m) : m_(m) {}
  // The row for `name` beside `floor` (compare); none when `name` was not measured.
  void add(const std::string& name, std::optional<std::string> floor, std::string note = {});
  // A row the command computed itself (a figure divided per visit, a percentile).
  void add(Row r) { rows_.push_back(std::move(r)); }
  std::vector<Row>& rows() { return rows_; }
  // finish() below, over these rows.
  int finish(bool json) const;

 private:
  const Measured& m_;
  std::vector<Row> rows_;
};

// Adds the options every `ward bench` subcommand shares (--json, --min-time, --repetitions,
// --filter) to `cmd`, bound to `opt`.
void add_common_options(CLI::App& cmd, Options& opt);

// Registers `ward bench <name>` with the common options; `run` is its body and its result the
// process exit code.
void add_command(CLI::App& bench, const std::string& name, const std::string& help, int (*run)(const Options&),
                 int& exit_code);

// Prints `rows` (print below) and what was skipped; the exit code: 1 when nothing was measured.
int finish(const Measured& m, const std::vector<Row>& rows, bool json);

// Table on stdout, or `--json`: [{"name":..,"value":..,"unit":"ns","floor":..|null,"ratio":..|null}, ...]
void print(const std::vector<Row>& rows, bool json);

// Called with the rows of every table print() writes, after writing it (the CLI's `--plot`
// draws them). One per process; set before any command runs. Empty: nothing is called.
void on_table(std::function<void(const std::vector<Row>&)> f);

}  // namespace ward::bench
