// Callbacks across a retry (iface/callback_journal.h, docs/annotations.md): an idempotent call
// that crashes in the middle of a stream of callbacks is retried by the supervisor, and the host's
// functions still see every callback exactly once, in order, with the library steered by the
// results the host gave the first time. A retry that makes other callbacks is reported and
// delivered; replayed calls do not deliver theirs again. Real child processes running
// callback_crash.c, which asks the host which run of a call it is (a host service: the count
// survives restarts) so that it can crash in the first run only.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "callback_crash.h"
#include "ward/iface/callback.h"
#include "ward/ward.h"

WARD_CALLBACK(cc_row_fn, ward::user_data(0), ward::cstring(2));
WARD_CALLBACK(cc_label_fn, ward::user_data(0), ward::out(2, ward::elems(16)));
WARD_INTERFACE(cc_host, (next_run, ward::cstring(0)));
WARD_INTERFACE(cc_api,
               (emit, ward::cstring(0), ward::services(2), ward::callback(3, 4), ward::idempotent),
               (emit_labelled, ward::cstring(0), ward::services(2), ward::callback(3, 4), ward::callback(5, 6),
                ward::idempotent),
               (init, ward::cstring(0), ward::callback(2, 3), ward::replay_after_restart),
               (state, ward::idempotent));

// The same table's first function, declared without ward::idempotent: never retried.
struct cc_plain {
  decltype(cc_api::emit) emit;
};
WARD_INTERFACE(cc_plain, (emit, ward::cstring(0), ward::services(2), ward::callback(3, 4)));

namespace {

using namespace std::chrono_literals;

// Every row the host's function saw, as "<index>|<text>", with its value. Its result is the
// count of calls so far times 7: a host that ran again would answer differently, so the values
// of later rows (1000 * i + the previous result) show which answers the library got.
struct Rows {
  std::vector<std::string> texts;
  std::vector<long long> values;
  int calls = 0;
  int stop_at_call = -1;  // answer -1 (stop) at this call
};
int on_row(void* ud, int index, const char* text, long long value) {
  auto& r = *static_cast<Rows*>(ud);
  r.texts.push_back(std::to_string(index) + "|" + text);
  r.values.push_back(value);
  ++r.calls;
  return r.calls == r.stop_at_call ? -1 : 7 * r.calls;
}

std::vector<std::string> texts(const std::string& seed, int from, int to, const std::string& suffix = "") {
  std::vector<std::string> v;
  for (int i = from; i < to; ++i) v.push_back(std::to_string(i) + "|" + seed + ":" + std::to_string(i) + suffix);
  return v;
}
// The values a stream of n rows has when the library got the host's first answer to each.
std::vector<long long> steered_values(int n) {
  std::vector<long long> v;
  for (int i = 0; i < n; ++i) v.push_back(1000LL * i + 7LL * i);
  return v;
}

cc_job job(int n, int crash_after) {
  return cc_job{.n = n, .crash_after = crash_after, .crash_runs = 1, .vary_from = -1, .shrink_to = -1, .garbage_at = -1};
}

// The runs of each seed's calls (host services run again on a retry: they count every run).
std::mutex g_runs_mu;
std::map<std::string, int> g_runs;
int next_run(const char* seed) {
  std::lock_guard<std::mutex> g(g_runs_mu);
  return ++g_runs[seed];
}
int runs(const std::string& seed) {
  std::lock_guard<std::mutex> g(g_runs_mu);
  return g_runs[seed];
}
const cc_host kHost{&next_run};

std::string plugin() { return std::string(WARD_PLUGIN_DIR) + "/libcallback_crash.so"; }

template <class T>
T value(const ward::Result<ward::Tainted<T>>& r) {
  EXPECT_TRUE(r) << (r ? "" : r.error().message());
  return r ? r->unverified_value_i_trust_it() : T{};
}

struct CallbackRetry : ::testing::Test {
  void SetUp() override {
    {
      std::lock_guard<std::mutex> g(g_runs_mu);
      g_runs.clear();
    }
    ext = load<cc_api>();
  }
  template <class Api>
  std::unique_ptr<ward::Extension<Api>> load() {
    auto e = sup.load<Api>(plugin(), "callback_crash_entry");
    EXPECT_TRUE(e) << e.error().message();
    return e ? std::move(*e) : nullptr;
  }
  std::vector<ward::RecoveryNotice> diverged() {
    std::lock_guard<std::mutex> g(mu);
    std::vector<ward::RecoveryNotice> v;
    for (const auto& n : notices)
      if (n.kind == ward::NoticeKind::callbacks_diverged) v.push_back(n);
    return v;
  }

  std::mutex mu;
  std::vector<ward::RecoveryNotice> notices;
  ward::Supervisor sup{ward::RestartPolicy{.max_restarts = 20, .window = 10s}, [this](const ward::RecoveryNotice& n) {
                         std::lock_guard<std::mutex> g(mu);
                         notices.push_back(n);
                       }};
  std::unique_ptr<ward::Extension<cc_api>> ext;
};

TEST_F(CallbackRetry, EachRowReachesTheHostOnceAcrossACrashInTheStream) {
  ASSERT_TRUE(ext);
  Rows rows;
  // Five rows delivered, then the child dies; the supervisor restarts it and sends emit again.
  const long long sum = value((*ext)->emit("s", job(8, 5), &kHost, &on_row, &rows));
  EXPECT_EQ(runs("s"), 2) << "the call ran twice";
  EXPECT_EQ(rows.texts, texts("s", 0, 8)) << "each row once, in order";
  // Rows 5..7 were computed from the answers the host gave the crashed run (returned again from
  // the record, not recomputed: the host would have answered differently).
  EXPECT_EQ(rows.values, steered_values(8));
  EXPECT_EQ(sum, 7LL * (8 * 9 / 2));
  const auto st = ext->stats();
  EXPECT_EQ(st.restarts, 1u);
  EXPECT_EQ(st.retried, 1u);
  EXPECT_EQ(st.callbacks_suppressed, 5u);
  EXPECT_EQ(st.callbacks_diverged, 0u);
  EXPECT_TRUE(diverged().empty());
}

TEST_F(CallbackRetry, CrashAtEitherEndOfTheStream) {
  ASSERT_TRUE(ext);
  // Before the first row (nothing to match), and after the last one (everything matched).
  for (int at : {0, 1, 7, 8}) {
    const std::string seed = "e" + std::to_string(at);
    Rows rows;
    const auto before = ext->stats();
    EXPECT_EQ(value((*ext)->emit(seed.c_str(), job(8, at), &kHost, &on_row, &rows)), 7LL * 36) << at;
    EXPECT_EQ(runs(seed), 2) << at;
    EXPECT_EQ(rows.texts, texts(seed, 0, 8)) << at;
    EXPECT_EQ(rows.values, steered_values(8)) << at;
    EXPECT_EQ(ext->stats().callbacks_suppressed - before.callbacks_suppressed, static_cast<std::uint64_t>(at)) << at;
  }
  EXPECT_TRUE(diverged().empty());
}

TEST_F(CallbackRetry, TheHostsAnswersKeepSteeringAfterTheRetry) {
  ASSERT_TRUE(ext);
  Rows rows;
  rows.stop_at_call = 7;  // the host's seventh call says stop: row 6, in the retry
  EXPECT_EQ(value((*ext)->emit("t", job(10, 4), &kHost, &on_row, &rows)), -1);
  EXPECT_EQ(rows.texts, texts("t", 0, 7));
  EXPECT_EQ(rows.values, steered_values(7));
}

// Out data a callback wrote (a label the library then uses) is written again from the record.
struct Labels {
  std::vector<int> asked;
};
void on_label(void* ud, int index, char* label) {
  auto& l = *static_cast<Labels*>(ud);
  l.asked.push_back(index);
  std::snprintf(label, 16, "L%d-%zu", index, l.asked.size());
}

TEST_F(CallbackRetry, OutDataComesFromTheRecordToo) {
  ASSERT_TRUE(ext);
  Labels labels;
  Rows rows;
  EXPECT_EQ(value((*ext)->emit_labelled("l", job(6, 3), &kHost, &on_label, &labels, &on_row, &rows)), 7LL * 21);
  EXPECT_EQ(runs("l"), 2);
  EXPECT_EQ(labels.asked, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  std::vector<std::string> want;
  for (int i = 0; i < 6; ++i) want.push_back(std::to_string(i) + "|L" + std::to_string(i) + "-" + std::to_string(i + 1));
  EXPECT_EQ(rows.texts, want) << "the retry's labels are the ones the host wrote the first time";
  EXPECT_EQ(ext->stats().callbacks_suppressed, 6u);  // three labels, three rows
  EXPECT_TRUE(diverged().empty());
}

TEST_F(CallbackRetry, ADivergingRetryIsReportedAndDelivered) {
  ASSERT_TRUE(ext);
  Rows rows;
  cc_job j = job(8, 5);
  j.vary_from = 3;  // rows 3.. say which run made them
  ASSERT_TRUE((*ext)->emit("d", j, &kHost, &on_row, &rows));
  auto want = texts("d", 0, 3);
  for (const auto& s : texts("d", 3, 5, ":r1")) want.push_back(s);  // the crashed run's
  for (const auto& s : texts("d", 3, 8, ":r2")) want.push_back(s);  // the retry's, from where it differs
  EXPECT_EQ(rows.texts, want);
  const auto d = diverged();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].count, 3u) << "answered from the record before the divergence";
  EXPECT_EQ(d[0].cause.kind, ward::Errc::bad_data);
  EXPECT_EQ(d[0].cause.function, "cc_api::emit");
  EXPECT_NE(d[0].cause.detail.find("callback 4 of the 5"), std::string::npos) << d[0].cause.message();
  EXPECT_EQ(ext->stats().callbacks_diverged, 1u);
  EXPECT_EQ(ext->stats().callbacks_suppressed, 3u);
}

TEST_F(CallbackRetry, ARetryThatEndsShortIsReported) {
  ASSERT_TRUE(ext);
  Rows rows;
  cc_job j = job(8, 5);
  j.shrink_to = 3;
  EXPECT_EQ(value((*ext)->emit("k", j, &kHost, &on_row, &rows)), 7LL + 14 + 21);
  EXPECT_EQ(rows.texts, texts("k", 0, 5)) << "nothing twice";
  const auto d = diverged();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].count, 3u);
  EXPECT_NE(d[0].cause.detail.find("made 3 callbacks; the earlier attempt had delivered 5"), std::string::npos)
      << d[0].cause.message();
}

// Hostile: a callback that would match the record is decoded and checked first all the same.
TEST_F(CallbackRetry, GarbageInARetriedCallbackIsStillAViolation) {
  ASSERT_TRUE(ext);
  Rows rows;
  cc_job j = job(8, 3);
  j.garbage_at = 1;  // the retry forges row 1's user data
  auto r = (*ext)->emit("g", j, &kHost, &on_row, &rows);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::violation) << r.error().message();
  EXPECT_EQ(rows.texts, texts("g", 0, 3)) << "row 0 answered from the record, row 1 never reached the host";
  EXPECT_EQ(ext->stats().callbacks_suppressed, 1u);
  // The next call recovers the extension and goes through.
  EXPECT_EQ(value((*ext)->state()), 0);
}

TEST_F(CallbackRetry, ReplayedCallsDoNotDeliverTheirCallbacksAgain) {
  ASSERT_TRUE(ext);
  Rows rows;
  ASSERT_TRUE((*ext)->init("cfg", 3, &on_row, &rows));
  EXPECT_EQ(value((*ext)->state()), 7 + 14 + 21);
  for (int restart = 1; restart <= 2; ++restart) {
    ext->kill();
    // state() finds the child dead; init is replayed into the fresh one, its rows answered from
    // the record of its first run, so the library's state is the one the host's answers made.
    EXPECT_EQ(value((*ext)->state()), 7 + 14 + 21) << restart;
    EXPECT_EQ(ext->stats().restarts, static_cast<std::uint64_t>(restart));
    EXPECT_EQ(rows.texts, (std::vector<std::string>{"0|init:cfg:0", "1|init:cfg:1", "2|init:cfg:2"})) << restart;
    EXPECT_EQ(ext->stats().callbacks_suppressed, 3u * static_cast<std::uint64_t>(restart));
  }
  EXPECT_TRUE(diverged().empty());
}

TEST_F(CallbackRetry, CallsThatAreNotIdempotentAreNotRetried) {
  auto plain = load<cc_plain>();
  ASSERT_TRUE(plain);
  Rows rows;
  auto r = (*plain)->emit("n", job(8, 3), &kHost, &on_row, &rows);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::crashed);
  EXPECT_EQ(rows.texts, texts("n", 0, 3)) << "what was delivered stays delivered; the caller gets the error";
  EXPECT_EQ(plain->stats().retried, 0u);
  EXPECT_EQ(plain->stats().callbacks_suppressed, 0u);
  // Called again by the host, it runs afresh (the host decides; ward does not match it).
  Rows again;
  EXPECT_EQ(value((*plain)->emit("n", job(8, 3), &kHost, &on_row, &again)), 7LL * 36);
  EXPECT_EQ(again.texts, texts("n", 0, 8));
}

// A callback that calls into the extension again: the inner call keeps its own record, so the
// outer call's retry does not see the inner call's rows (and the inner call is not made twice).
struct Nesting {
  ward::Extension<cc_api>* ext = nullptr;
  Rows outer, inner;
};
int on_outer_row(void* ud, int index, const char* text, long long value) {
  auto& n = *static_cast<Nesting*>(ud);
  if (index == 1) {
    cc_job j = job(2, -1);
    j.crash_runs = 0;
    auto r = (*n.ext)->emit("in", j, &kHost, &on_row, &n.inner);
    if (!r) return -1000;
  }
  return on_row(&n.outer, index, text, value);
}

TEST_F(CallbackRetry, NestedCallsKeepTheirOwnRecords) {
  ASSERT_TRUE(ext);
  Nesting n{ext.get()};
  EXPECT_EQ(value((*ext)->emit("o", job(4, 3), &kHost, &on_outer_row, &n)), 7LL * 10);
  EXPECT_EQ(runs("o"), 2);
  EXPECT_EQ(n.outer.texts, texts("o", 0, 4));
  EXPECT_EQ(n.inner.texts, texts("in", 0, 2));
  EXPECT_EQ(runs("in"), 1) << "the inner call ran once: its outer row was answered from the record";
  EXPECT_TRUE(diverged().empty());
}

// A record has bounds (the extension decides how many callbacks it makes): past them nothing more
// is kept, and a retry that gets that far cannot know what the host saw: it delivers and reports.
TEST_F(CallbackRetry, ARecordCutShortReportsWhatItCannotMatch) {
  ASSERT_TRUE(ext);
  using ward::detail::CallbackJournal;
  using ward::detail::CallbackRecord;
  CallbackRecord rec;
  CallbackJournal j(&rec);
  CallbackJournal::Scope in_journal(j);
  j.begin(ext->domain());
  for (std::size_t i = 0; i <= CallbackRecord::kMaxEntries; ++i) j.delivered({1, i, {}, false, {}});
  EXPECT_EQ(rec.entries.size(), CallbackRecord::kMaxEntries);
  EXPECT_TRUE(rec.truncated);
  EXPECT_FALSE(j.end(false).diverged);
  j.begin(ext->domain());
  EXPECT_EQ(CallbackJournal::active(ext->domain()), &j);
  for (std::size_t i = 0; i < CallbackRecord::kMaxEntries; ++i) ASSERT_NE(j.match(1, i), nullptr) << i;
  EXPECT_EQ(j.match(1, 0), nullptr) << "past the record: delivered";
  auto o = j.end(true);
  EXPECT_TRUE(o.diverged);
  EXPECT_EQ(o.suppressed, CallbackRecord::kMaxEntries);
  EXPECT_NE(o.why.find("(a record's bounds) are delivered again"), std::string::npos) << o.why;
  // Bytes too: one large out buffer fills the budget.
  CallbackRecord big;
  CallbackJournal k(&big);
  k.begin(ext->domain());
  k.delivered({1, 1, {}, false, std::vector<std::byte>(CallbackRecord::kMaxBytes)});
  k.delivered({1, 2, {}, false, std::vector<std::byte>(1)});
  EXPECT_EQ(big.entries.size(), 1u);
  EXPECT_TRUE(big.truncated);
  // Another domain's upcalls are not this journal's.
  auto other = load<cc_api>();
  ASSERT_TRUE(other);
  EXPECT_EQ(CallbackJournal::active(other->domain()), nullptr);
}

// Host threads calling at once: each call's record is its own. Thread 0's calls crash in their
// first run; thread 1's calls meet the restarts. Every host function sees its rows once. (A call
// of thread 1 may find the child dead twice, waiting for one recovery and then meeting the next
// crash: it then gets an `earlier` error, having never reached the child: supervisor.h.)
TEST_F(CallbackRetry, ThreadsEachGetTheirRowsOnce) {
  ASSERT_TRUE(ext);
  constexpr int kThreads = 2, kCalls = 4;
  std::vector<std::vector<Rows>> seen(kThreads, std::vector<Rows>(kCalls));
  std::vector<std::vector<int>> never_reached(kThreads, std::vector<int>(kCalls));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < kCalls; ++k) {
        const std::string seed = "t" + std::to_string(t) + "c" + std::to_string(k);
        cc_job j = job(6, 1 + k % 5);
        j.crash_runs = t == 0 ? 1 : 0;
        auto r = (*ext)->emit(seed.c_str(), j, &kHost, &on_row, &seen[t][k]);
        never_reached[t][k] = !r && t == 1 && r.error().earlier;
        EXPECT_TRUE(r || never_reached[t][k]) << r.error().message();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    for (int k = 0; k < kCalls; ++k) {
      const std::string seed = "t" + std::to_string(t) + "c" + std::to_string(k);
      if (never_reached[t][k]) {
        EXPECT_TRUE(seen[t][k].texts.empty()) << seed;
        EXPECT_EQ(runs(seed), 0) << seed;
        continue;
      }
      EXPECT_EQ(seen[t][k].texts, texts(seed, 0, 6)) << seed;
      EXPECT_EQ(seen[t][k].values, steered_values(6)) << seed;
      EXPECT_EQ(runs(seed), t == 0 ? 2 : 1) << seed;
    }
  }
  EXPECT_EQ(ext->stats().restarts, static_cast<std::uint64_t>(kCalls));
  EXPECT_TRUE(diverged().empty());
}

}  // namespace
