// SQLite, unmodified, as a ward extension: an in-memory database in a sandboxed child process,
// rows printed through sqlite3_exec's callback and through a prepared statement.
//
//   ward-example-sqlite [--help]
// Exit codes: 0 success, 1 a ward error (load, crossing), 2 an SQLite error, 64 bad usage.
#include <cstdio>
#include <cstring>

#include "sqlite/sqlite_api.h"

namespace {

int print_row(void* ud, int n, char** values, char** names) {
  std::printf("%s", static_cast<const char*>(ud));
  for (int i = 0; i < n; ++i) std::printf(" %s=%s", names[i], values[i] ? values[i] : "NULL");
  std::printf("\n");
  return 0;
}

int ward_error(const ward::Error& e) {
  std::fprintf(stderr, "ward-example-sqlite: %s\n", e.message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) {
    const bool help = std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0;
    std::fprintf(help ? stdout : stderr,
                 "usage: ward-example-sqlite [--help]\n"
                 "Runs libsqlite3 in a sandboxed child process: creates an in-memory database, inserts rows,\n"
                 "prints them via sqlite3_exec's callback and via a prepared statement, and shows an error\n"
                 "message the library allocated. Exit: 0 ok, 1 ward error, 2 SQLite error, 64 usage.\n");
    return help ? 0 : 64;
  }
  // SQLite seeds its PRNG from /dev/urandom and copes when that fails (it seeds from the time and
  // pid): file calls are refused with EACCES rather than ending the extension. No file opens.
  auto policy = ward::Policy::builder().refuse_files().build();
  if (!policy) return ward_error(policy.error());
  auto lib = ward::Instance<sqlite_lib>::open("libsqlite3.so.0", *policy);
  if (!lib) return ward_error(lib.error());

  sqlite3* db = nullptr;  // a token for the extension's connection
  auto rc = (*lib)->sqlite3_open(":memory:", &db);
  if (!rc) return ward_error(rc.error());
  if (rc->unverified_value_i_trust_it() != SQLITE_OK) return 2;

  char* err = nullptr;  // a host copy of the message sqlite allocates; freed with sqlite3_free
  auto ex = (*lib)->sqlite3_exec(db,
                                 "CREATE TABLE pets(name TEXT, legs INTEGER, weight REAL);"
                                 "INSERT INTO pets VALUES ('cat', 4, 4.2), ('snake', 0, 1.5), ('parrot', 2, NULL);",
                                 nullptr, nullptr, &err);
  if (!ex) return ward_error(ex.error());
  if (ex->unverified_value_i_trust_it() != SQLITE_OK) {
    std::fprintf(stderr, "sqlite: %s\n", err);
    (void)(*lib)->sqlite3_free(err);
    return 2;
  }

  char prefix[] = "exec:";
  ex = (*lib)->sqlite3_exec(db, "SELECT * FROM pets ORDER BY legs", &print_row, prefix, nullptr);
  if (!ex) return ward_error(ex.error());

  sqlite3_stmt* st = nullptr;
  auto pr = (*lib)->sqlite3_prepare_v2(db, "SELECT name, legs * 10, weight FROM pets WHERE legs > 0", -1, &st, nullptr);
  if (!pr) return ward_error(pr.error());
  if (pr->unverified_value_i_trust_it() != SQLITE_OK) return 2;
  for (;;) {
    auto step = (*lib)->sqlite3_step(st);
    if (!step) return ward_error(step.error());
    if (step->unverified_value_i_trust_it() != SQLITE_ROW) break;
    auto name = (*lib)->sqlite3_column_text(st, 0);
    auto legs = (*lib)->sqlite3_column_int64(st, 1);
    auto weight = (*lib)->sqlite3_column_double(st, 2);
    if (!name || !legs || !weight) return ward_error(!name ? name.error() : !legs ? legs.error() : weight.error());
    const auto n = name->unverified_value_i_trust_it();  // the extension's word: printed, never trusted
    std::printf("step: %s %lld %.2f\n", n ? n->c_str() : "NULL", static_cast<long long>(legs->unverified_value_i_trust_it()),
                weight->unverified_value_i_trust_it());
  }
  (void)(*lib)->sqlite3_finalize(st);

  ex = (*lib)->sqlite3_exec(db, "SELEC oops", nullptr, nullptr, &err);
  if (!ex) return ward_error(ex.error());
  std::printf("error %d: %s\n", ex->unverified_value_i_trust_it(), err ? err : "(none)");
  (void)(*lib)->sqlite3_free(err);
  (void)(*lib)->sqlite3_close(db);
  return 0;
}
