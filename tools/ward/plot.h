// `ward bench ... --plot DIR`: one chart per bench table, each figure drawn beside its floor with
// the ratio written on it, as SVG and PNG, drawn by gnuplot (Debian's gnuplot-nox).
//
// Only rows compared with a floor (a ratio) are drawn: a chart of figures without their floors
// would invite the comparisons the tables exist to prevent. Rows of different units go to
// separate charts (NAME-UNIT.*). The gnuplot script is kept beside the images (NAME.gp) so a
// chart can be restyled and redrawn without measuring again. Runs gnuplot as a child with a
// deadline; not thread-safe only in that two calls with the same DIR and NAME race on the files.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "report.h"
#include "ward/core/error.h"

namespace ward::cli {

// The gnuplot script for `rows` (all of one unit, each with a floor and a ratio): an SVG to
// `base`.svg, then a PNG to `base`.png. Pure; rows without a ratio are left out.
std::string gnuplot_script(const std::vector<bench::Row>& rows, const std::string& title, const std::string& base);

// Writes DIR/NAME[-UNIT].{gp,svg,png} for `rows` and returns the image paths written (none when no
// row has a floor). Errors: DIR cannot be made (misuse); gnuplot missing or failing (exited,
// crashed), or still running after `deadline` (hung: it is killed).
Result<std::vector<std::string>> plot_table(const std::vector<bench::Row>& rows, const std::string& dir,
                                            const std::string& name,
                                            std::chrono::milliseconds deadline = std::chrono::seconds(30));

// The gnuplot program ward runs: $WARD_GNUPLOT, else `gnuplot` on PATH. Empty when not found.
std::string gnuplot_program();

}  // namespace ward::cli
