#include "report.h"

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <memory>

namespace ward::bench {
namespace {

void print_rows(const std::vector<Row>& rows, bool json);

class Collector : public benchmark::BenchmarkReporter {
 public:
  explicit Collector(Measured& out) : out_(out) {}
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      const std::string name = r.run_name.function_name;
      if (r.error_occurred) {
        out_.skipped[name] = r.error_message;
        continue;
      }
      if (r.run_type == Run::RT_Aggregate) {
        if (r.aggregate_name == "median") out_.ns[name] = r.GetAdjustedRealTime() * unit_ns(r.time_unit);
        if (r.aggregate_name == "p99") out_.p99[name] = r.GetAdjustedRealTime() * unit_ns(r.time_unit);
      } else if (!out_.ns.count(name)) {
        // Single repetition: no aggregate will come.
        out_.ns[name] = r.GetAdjustedRealTime() * unit_ns(r.time_unit);
      }
    }
  }
  void Finalize() override {}

 private:
  static double unit_ns(benchmark::TimeUnit u) {
    switch (u) {
      case benchmark::kNanosecond: return 1;
      case benchmark::kMicrosecond: return 1e3;
      case benchmark::kMillisecond: return 1e6;
      case benchmark::kSecond: return 1e9;
    }
    return 1;
  }
  Measured& out_;
};

}  // namespace

double p99(const std::vector<double>& v) {
  if (v.empty()) return 0;
  std::vector<double> s(v);
  std::sort(s.begin(), s.end());
  const std::size_t i = static_cast<std::size_t>(std::ceil(0.99 * static_cast<double>(s.size()))) - 1;
  return s[std::min(i, s.size() - 1)];
}

Measured run_registered(const Options& opt) {
  std::vector<std::string> args = {"ward-bench",
                                   "--benchmark_repetitions=" + std::to_string(std::max(1, opt.repetitions)),
                                   "--benchmark_min_time=" + fmt::format("{}", opt.min_time),
                                   "--benchmark_filter=" + opt.filter};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  int argc = static_cast<int>(argv.size());
  benchmark::Initialize(&argc, argv.data());
  Measured m;
  Collector c(m);
  benchmark::RunSpecifiedBenchmarks(&c);
  return m;
}

std::optional<Row> compare(const Measured& m, const std::string& name, const std::optional<std::string>& floor,
                           std::string note) {
  auto it = m.ns.find(name);
  if (it == m.ns.end()) return std::nullopt;
  Row r;
  r.name = name;
  r.value = it->second;
  if (auto u = m.unit.find(name); u != m.unit.end()) r.unit = u->second;
  r.note = std::move(note);
  if (floor) {
    r.floor = floor;
    if (auto f = m.ns.find(*floor); f != m.ns.end() && f->second > 0) r.ratio = it->second / f->second;
  }
  return r;
}

void Table::add(const std::string& name, std::optional<std::string> floor, std::string note) {
  if (auto r = compare(m_, name, floor, std::move(note))) rows_.push_back(*r);
}

int Table::finish(bool json) const { return bench::finish(m_, rows_, json); }

void add_common_options(CLI::App& cmd, Options& opt) {
  cmd.add_flag("--json", opt.json, "Print a JSON array of {name, value, unit, floor, ratio}");
  cmd.add_option("--min-time", opt.min_time, "Seconds per repetition of each benchmark")->capture_default_str();
  cmd.add_option("--repetitions", opt.repetitions, "Repetitions; the median is reported")->capture_default_str();
  cmd.add_option("--filter", opt.filter, "Regular expression selecting benchmarks")->capture_default_str();
}

namespace {
std::function<void(const std::vector<Row>&)>& table_hook() {
  static std::function<void(const std::vector<Row>&)> f;
  return f;
}
}  // namespace

void on_table(std::function<void(const std::vector<Row>&)> f) { table_hook() = std::move(f); }

void print(const std::vector<Row>& rows, bool json) {
  print_rows(rows, json);
  if (table_hook()) table_hook()(rows);
}

namespace {
void print_rows(const std::vector<Row>& rows, bool json) {
  if (json) {
    fmt::print("[\n");
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      fmt::print("  {{\"name\": \"{}\", \"value\": {:.3f}, \"unit\": \"{}\", \"floor\": {}, \"ratio\": {}}}{}\n", r.name,
                 r.value, r.unit, r.floor ? "\"" + *r.floor + "\"" : "null",
                 r.ratio ? fmt::format("{:.6g}", *r.ratio) : "null", i + 1 < rows.size() ? "," : "");
    }
    fmt::print("]\n");
    return;
  }
  std::size_t w = 4, fw = 5, uw = 2;
  for (const Row& r : rows) {
    w = std::max(w, r.name.size());
    fw = std::max(fw, r.floor ? r.floor->size() : 1);
    uw = std::max(uw, r.unit.size());
  }
  fmt::print("{:<{}}  {:>{}}  {:<{}}  {:>8}  {}\n", "name", w, "median", 10 + uw, "floor", fw, "ratio", "note");
  for (const Row& r : rows) {
    fmt::print("{:<{}}  {:>9.1f} {:<{}}  {:<{}}  {:>8}  {}\n", r.name, w, r.value, r.unit, uw, r.floor ? *r.floor : "-", fw,
               r.ratio ? (*r.ratio < 0.1 ? fmt::format("{:.4f}x", *r.ratio) : fmt::format("{:.2f}x", *r.ratio)) : "-", r.note);
  }
}
}  // namespace

void add_command(CLI::App& bench, const std::string& name, const std::string& help, int (*run)(const Options&),
                 int& exit_code) {
  auto opt = std::make_shared<Options>();
  auto* c = bench.add_subcommand(name, help);
  add_common_options(*c, *opt);
  c->callback([opt, run, &exit_code] { exit_code = run(*opt); });
}

int finish(const Measured& m, const std::vector<Row>& rows, bool json) {
  print(rows, json);
  for (const auto& [name, why] : m.skipped) fmt::print(stderr, "skipped {}: {}\n", name, why);
  return m.ns.empty() ? 1 : 0;
}

}  // namespace ward::bench
