// rio::Heap: transactions, their undo log, the allocator, protection, bad files, and crash tests
// with real processes and SIGKILL (writers killed at random instants, recovery killed midway).
#include "ward/rio/heap.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace ward::rio;
using ward::Errc;

// A private work directory on tmpfs (mkdtemp: mode 0700, a fresh name), removed when done.
struct WorkDir {
  fs::path p;
  WorkDir() {
    char t[] = "/dev/shm/ward-heap-test-XXXXXX";
    if (mkdtemp(t)) p = t;
  }
  ~WorkDir() {
    std::error_code ec;
    if (!p.empty()) fs::remove_all(p, ec);
  }
};

// A child process that is killed and reaped however the test ends.
struct Child {
  pid_t pid = -1;
  ~Child() { stop(); }
  int stop() {
    int st = 0;
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      pid = -1;
    }
    return st;
  }
  int wait() {
    int st = 0;
    if (pid > 0) waitpid(pid, &st, 0);
    pid = -1;
    return st;
  }
};

std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
std::byte pattern(std::uint64_t tx, std::uint64_t cell, std::uint64_t i) {
  return static_cast<std::byte>((mix(tx * 64 + cell) >> ((i & 7) * 8)) + i / 8);
}

HeapOptions opts(const fs::path& p, std::uint64_t size = 4 << 20, std::uint64_t log = 256 << 10) {
  HeapOptions o;
  o.path = p;
  o.size = size;
  o.log_size = log;
  return o;
}

std::vector<std::byte> read_file(const fs::path& p, std::uint64_t off, std::size_t n) {
  std::vector<std::byte> v(n);
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    (void)!pread(fd, v.data(), n, static_cast<off_t>(off));
    ::close(fd);
  }
  return v;
}
void write_file(const fs::path& p, std::uint64_t off, const void* data, std::size_t n) {
  const int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, data, n, static_cast<off_t>(off)), static_cast<ssize_t>(n));
  ::close(fd);
}

// A heap whose root is one allocation of `n` bytes filled with pattern(tx, 0, i).
Offset make_rooted(Heap& h, std::size_t n, std::uint64_t tx_pattern) {
  auto tx = h.begin();
  EXPECT_TRUE(tx);
  auto a = tx->alloc(n);
  EXPECT_TRUE(a) << a.error().detail;
  for (std::size_t i = 0; i < n; ++i) a->data[i] = pattern(tx_pattern, 0, i);
  EXPECT_TRUE(tx->set_root(a->off));
  EXPECT_TRUE(tx->commit());
  return a->off;
}
bool has_pattern(const Heap& h, Offset off, std::size_t n, std::uint64_t tx_pattern) {
  for (std::size_t i = 0; i < n; ++i)
    if (h.at(off)[i] != pattern(tx_pattern, 0, i)) return false;
  return true;
}

TEST(RioHeap, CommitIsVisibleAndSurvivesReopen) {
  WorkDir w;
  const auto p = w.p / "a.heap";
  HeapRecovery rep;
  Offset root = 0;
  {
    auto h = Heap::open(opts(p), &rep);
    ASSERT_TRUE(h) << h.error().detail;
    EXPECT_TRUE(rep.created);
    EXPECT_EQ((*h)->root(), 0u);
    root = make_rooted(**h, 1000, 1);
    auto tx = (*h)->begin();
    ASSERT_TRUE(tx);
    auto d = tx->declare((*h)->at(root) + 10, 20);
    ASSERT_TRUE(d) << d.error().detail;
    std::memset(*d, 0x77, 20);
    ASSERT_TRUE(tx->commit());
    EXPECT_FALSE(tx->commit()) << "a finished transaction cannot commit again";
  }
  auto h = Heap::open(opts(p), &rep);
  ASSERT_TRUE(h) << h.error().detail;
  EXPECT_FALSE(rep.created);
  EXPECT_FALSE(rep.rolled_back);
  ASSERT_EQ((*h)->root(), root);
  for (std::size_t i = 0; i < 1000; ++i)
    ASSERT_EQ((*h)->at(root)[i], i >= 10 && i < 30 ? std::byte{0x77} : pattern(1, 0, i)) << i;
  EXPECT_EQ((*h)->transactions(), 2u);
}

TEST(RioHeap, AbortAndDestructorRestoreEveryDeclaredRange) {
  WorkDir w;
  auto h = Heap::open(opts(w.p / "a.heap"));
  ASSERT_TRUE(h) << h.error().detail;
  const Offset root = make_rooted(**h, 8192, 2);
  for (bool explicit_abort : {true, false}) {
    auto tx = (*h)->begin();
    ASSERT_TRUE(tx);
    EXPECT_FALSE((*h)->begin()) << "one transaction at a time";
    // Overlapping ranges, declared and written in turn: the oldest bytes must win.
    for (auto [off, n] : {std::pair{0, 100}, {50, 4000}, {0, 8192}, {8000, 192}}) {
      auto d = tx->declare((*h)->at(root) + off, static_cast<std::size_t>(n));
      ASSERT_TRUE(d) << d.error().detail;
      std::memset(*d, 0xee, static_cast<std::size_t>(n));
    }
    auto extra = tx->alloc(300);
    ASSERT_TRUE(extra);
    ASSERT_TRUE(tx->set_root(extra->off));
    if (explicit_abort) tx->abort();
  }
  EXPECT_EQ((*h)->root(), root);
  EXPECT_TRUE(has_pattern(**h, root, 8192, 2));
  auto s = (*h)->check();
  ASSERT_TRUE(s) << s.error().detail;
  EXPECT_EQ(s->live_blocks, 1u) << "the aborted allocations are gone";
}

TEST(RioHeap, AllocationsAndFreesRollBack) {
  WorkDir w;
  auto h = Heap::open(opts(w.p / "a.heap"));
  ASSERT_TRUE(h) << h.error().detail;
  const Offset root = make_rooted(**h, 500, 3);
  {  // free the root and reuse its block at once, then abort: the root's bytes come back
    auto tx = (*h)->begin();
    ASSERT_TRUE(tx->free(root));
    EXPECT_FALSE((*h)->allocation_size(root)) << "freed";
    auto a = tx->alloc(500);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->off, root) << "same class: the freed block is reused";
    std::memset(a->data, 0, a->size);
    tx->abort();
  }
  EXPECT_TRUE(has_pattern(**h, root, 500, 3));
  auto before = (*h)->check();
  ASSERT_TRUE(before) << before.error().detail;
  {  // a committed free, then a reuse in a later transaction
    auto tx = (*h)->begin();
    ASSERT_TRUE(tx->free(root));
    EXPECT_FALSE(tx->free(root)) << "double free is refused";
    ASSERT_TRUE(tx->set_root(0));
    ASSERT_TRUE(tx->commit());
  }
  auto after = (*h)->check();
  ASSERT_TRUE(after) << after.error().detail;
  EXPECT_EQ(after->live_blocks, 0u);
  EXPECT_EQ(after->free_blocks, 1u);
  auto tx = (*h)->begin();
  auto a = tx->alloc(600);  // smaller, same size class (1 KiB)
  ASSERT_TRUE(a);
  EXPECT_EQ(a->off, root);
  ASSERT_TRUE(tx->commit());
  EXPECT_FALSE(tx->alloc(1)) << "finished";
  auto s = (*h)->check();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->live_blocks, 1u);
  EXPECT_EQ(s->free_blocks, 0u);
}

TEST(RioHeap, DeclaringOutsideTheHeapIsRefused) {
  WorkDir w;
  auto h = Heap::open(opts(w.p / "a.heap"));
  ASSERT_TRUE(h);
  auto tx = (*h)->begin();
  int local = 0;
  EXPECT_EQ(tx->declare(&local, sizeof local).error().kind, Errc::misuse);
  EXPECT_EQ(tx->declare((*h)->at(0), 8).error().kind, Errc::misuse) << "the header is not declarable";
  EXPECT_EQ(tx->declare((*h)->at((*h)->mapping().size() - 8), 16).error().kind, Errc::misuse) << "past the end";
}

TEST(RioHeap, FullLogOrFullHeapIsAnErrorAndTheTransactionStillAborts) {
  WorkDir w;
  auto h = Heap::open(opts(w.p / "a.heap", 1 << 20, 16 << 10));
  ASSERT_TRUE(h) << h.error().detail;
  const Offset root = make_rooted(**h, 64 << 10, 4);
  auto tx = (*h)->begin();
  auto d = tx->declare((*h)->at(root), 8 << 10);
  ASSERT_TRUE(d);
  std::memset(*d, 1, 8 << 10);
  auto full = tx->declare((*h)->at(root) + (8 << 10), 8 << 10);
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().kind, Errc::limit);
  EXPECT_NE(full.error().detail.find("undo log full"), std::string::npos) << full.error().detail;
  tx->abort();
  EXPECT_TRUE(has_pattern(**h, root, 64 << 10, 4));
  auto tx2 = (*h)->begin();
  auto big = tx2->alloc(2 << 20);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().kind, Errc::limit);
}

// A store into the heap that no transaction declared, through the program's view.
void stray_store(Protection prot, const fs::path& p, int& status, bool& intact) {
  auto o = opts(p);
  o.protection = prot;
  Offset root = 0;
  {
    auto h = Heap::open(o);
    ASSERT_TRUE(h) << h.error().detail;
    root = make_rooted(**h, 64, 5);
  }
  Child c;
  c.pid = fork();
  if (c.pid == 0) {
    signal(SIGSEGV, SIG_DFL);  // die of the fault itself, even under a sanitizer
    auto h = Heap::open(o);
    if (!h) _exit(3);
    auto* v = const_cast<volatile std::byte*>((*h)->at(root));
    v[3] = std::byte{0};
    _exit(5);  // the store landed
  }
  status = c.wait();
  auto h = Heap::open(o);
  ASSERT_TRUE(h) << h.error().detail;
  intact = has_pattern(**h, root, 64, 5);
}

TEST(RioHeap, UndeclaredStoreFaultsUnderAliasProtection) {
  WorkDir w;
  int st = 0;
  bool intact = false;
  stray_store(Protection::alias, w.p / "a.heap", st, intact);
  ASSERT_TRUE(WIFSIGNALED(st)) << "status " << st;
  EXPECT_EQ(WTERMSIG(st), SIGSEGV);
  EXPECT_TRUE(intact);
  // Without protection the same store lands: what alias protection prevents.
  stray_store(Protection::off, w.p / "b.heap", st, intact);
  ASSERT_TRUE(WIFEXITED(st)) << "status " << st;
  EXPECT_EQ(WEXITSTATUS(st), 5);
  EXPECT_FALSE(intact);
}

TEST(RioHeap, OneOwnerAtATimeAndPrivateFilesOnly) {
  WorkDir w;
  const auto p = w.p / "a.heap";
  auto h = Heap::open(opts(p));
  ASSERT_TRUE(h);
  auto second = Heap::open(opts(p));
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().kind, Errc::misuse);
  EXPECT_NE(second.error().detail.find("in use by another process (pid " + std::to_string(getpid())), std::string::npos)
      << second.error().detail;
  h->reset();
  ASSERT_EQ(chmod(p.c_str(), 0644), 0);
  auto open_mode = Heap::open(opts(p));
  ASSERT_FALSE(open_mode);
  EXPECT_NE(open_mode.error().detail.find("open to group or others (mode 0644)"), std::string::npos) << open_mode.error().detail;
  ASSERT_EQ(chmod(p.c_str(), 0600), 0);
  fs::create_symlink(p, w.p / "link.heap");
  auto link = Heap::open(opts(w.p / "link.heap"));
  ASSERT_FALSE(link);
  EXPECT_NE(link.error().detail.find("symbolic link"), std::string::npos) << link.error().detail;
  auto bad = opts(p);
  bad.protection = Protection::mprotect;
  EXPECT_EQ(Heap::open(bad).error().kind, Errc::misuse);
  EXPECT_TRUE(Heap::open(opts(p))) << "the file itself is fine";
  // Nothing left behind by creation but the heap and the link.
  EXPECT_EQ(std::distance(fs::directory_iterator(w.p), fs::directory_iterator()), 2);
}

TEST(RioHeap, BadFilesGiveClearErrors) {
  WorkDir w;
  const auto good = w.p / "good.heap";
  std::uint64_t heap_off = 0;
  {
    auto h = Heap::open(opts(good));
    ASSERT_TRUE(h);
    make_rooted(**h, 100, 6);
    heap_off = 4096 + (256 << 10);
  }
  struct Case {
    const char* name;
    std::function<void(const fs::path&)> damage;
    const char* says;
  };
  const std::uint32_t v99 = 99;
  const std::uint64_t junk = ~0ull;
  const std::vector<Case> cases = {
      {"empty", [](const fs::path& p) { fs::resize_file(p, 0); }, "too short to be a heap"},
      {"short", [](const fs::path& p) { fs::resize_file(p, 100); }, "too short to be a heap"},
      {"magic", [](const fs::path& p) { write_file(p, 0, "notaheap", 8); }, "not a ward heap (bad magic)"},
      {"version", [&](const fs::path& p) { write_file(p, 8, &v99, 4); }, "has version 99"},
      {"geometry", [&](const fs::path& p) { write_file(p, 24, &junk, 8); }, "header is damaged"},
      {"truncated", [](const fs::path& p) { fs::resize_file(p, 1 << 20); }, "truncated or extended"},
      {"extended", [](const fs::path& p) { fs::resize_file(p, 8 << 20); }, "truncated or extended"},
      {"bump", [&](const fs::path& p) { write_file(p, heap_off + 8, &junk, 8); }, "allocator state is damaged"},
      {"root", [&](const fs::path& p) { write_file(p, heap_off, &junk, 8); }, "allocator state is damaged"},
  };
  for (const auto& c : cases) {
    const auto p = w.p / (std::string(c.name) + ".heap");
    fs::copy_file(good, p);
    c.damage(p);
    const auto size = fs::file_size(p);
    const auto before = read_file(p, 0, size);
    auto o = opts(p);
    auto h = Heap::open(o);
    ASSERT_FALSE(h) << c.name;
    EXPECT_EQ(h.error().kind, Errc::load_failed) << c.name;
    EXPECT_NE(h.error().detail.find(c.says), std::string::npos) << c.name << ": " << h.error().detail;
    EXPECT_EQ(fs::file_size(p), size) << c.name << ": a bad file is left as it is";
    EXPECT_TRUE(read_file(p, 0, size) == before) << c.name << ": a bad file is left as it is";
  }
  fs::create_directory(w.p / "dir.heap");
  EXPECT_FALSE(Heap::open(opts(w.p / "dir.heap")));
}

// A child that declares and scribbles over the whole root in 4 KiB ranges, says so on `fd`, and
// waits to be killed: the heap is left with a valid undo log of n/4096 records.
[[noreturn]] void scribble_and_wait(const HeapOptions& o, std::size_t n, int fd) {
  auto h = Heap::open(o);
  if (!h) _exit(3);
  auto tx = (*h)->begin();
  const Offset root = (*h)->root();
  for (std::size_t off = 0; off < n; off += 4096) {
    auto d = tx->declare((*h)->at(root) + off, std::min<std::size_t>(4096, n - off));
    if (!d) _exit(4);
    std::memset(*d, 0xee, std::min<std::size_t>(4096, n - off));
  }
  (void)!write(fd, "s", 1);
  for (;;) pause();
}

bool wait_readable(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, ms) == 1;
}

TEST(RioHeap, CrashMidTransactionIsRolledBackAtOpenAndADamagedLogIsLeftAlone) {
  WorkDir w;
  const auto o = opts(w.p / "a.heap");
  Offset root = 0;
  {
    auto h = Heap::open(o);
    ASSERT_TRUE(h);
    root = make_rooted(**h, 40000, 7);
  }
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  Child c;
  c.pid = fork();
  if (c.pid == 0) scribble_and_wait(o, 40000, fds[1]);
  close(fds[1]);
  ASSERT_TRUE(wait_readable(fds[0], 20000)) << "the child never scribbled";
  close(fds[0]);
  c.stop();
  // Damage record 0's offset on a copy: that copy must be refused and left scribbled.
  const auto copy = w.p / "copy.heap";
  fs::copy_file(o.path, copy);
  const std::uint64_t junk = 12345;
  write_file(copy, 4096, &junk, 8);
  auto oc = o;
  oc.path = copy;
  auto bad = Heap::open(oc);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().detail.find("undo log record 0 of 10 is damaged"), std::string::npos) << bad.error().detail;
  EXPECT_EQ(read_file(copy, root, 1)[0], std::byte{0xee}) << "not rolled back by a damaged log";
  HeapRecovery rep;
  auto h = Heap::open(o, &rep);
  ASSERT_TRUE(h) << h.error().detail;
  EXPECT_TRUE(rep.rolled_back);
  EXPECT_EQ(rep.ranges, 10u);
  EXPECT_EQ(rep.bytes, 40000u);
  EXPECT_TRUE(has_pattern(**h, root, 40000, 7));
}

// ---- random kills ---------------------------------------------------------------------------
// The writer runs transaction t = 1, 2, ...: each touches 1-4 of kCells cells, either rewriting
// the cell's block in place (declared in two ranges) or freeing it and allocating a new one of a
// random size, fills the block with pattern(t, cell), sets the cell to {t, len, block} and the
// root's `last` to t, commits, and only then writes t to the pipe. Before some transactions it
// runs one that does the same with other bytes and aborts. Every transaction's plan comes from
// (seed, t), so the test replays the committed ones on a model and compares byte for byte.
constexpr int kCells = 24;
struct Cell {
  std::uint64_t tx, len;
  Offset block;
};
struct Root {
  std::uint64_t last;
  Cell cells[kCells];
};
struct Op {
  int cell;
  bool replace;
  std::uint32_t len, split;
};

std::vector<Op> plan(std::uint64_t seed, std::uint64_t t) {
  std::mt19937_64 r(mix(seed ^ mix(t)));
  std::vector<Op> ops(1 + r() % 4);
  for (auto& op : ops) {
    op.cell = static_cast<int>(r() % kCells);
    op.replace = r() % 3 == 0;
    const auto k = r() % 10;
    op.len = static_cast<std::uint32_t>(1 + (k < 3 ? r() % 64 : k < 8 ? r() % 1024 : r() % 6000));
    op.split = static_cast<std::uint32_t>(r());
  }
  return ops;
}
bool aborts_first(std::uint64_t seed, std::uint64_t t) { return mix(seed * 3 + t) % 4 == 0; }

ward::Result<void> run_plan(Heap& h, Transaction& tx, std::uint64_t t, std::uint64_t pat, const std::vector<Op>& ops) {
  const Root* root = h.at<Root>(h.root());
  for (const Op& op : ops) {
    const Cell& c = root->cells[op.cell];
    std::uint64_t len = c.len;
    Offset blk = c.block;
    std::byte* dst = nullptr;
    if (op.replace || blk == 0) {
      if (blk) WARD_TRY(tx.free(blk));
      auto a = WARD_TRY(tx.alloc(op.len));
      blk = a.off;
      dst = a.data;
      len = op.len;
    } else {
      const std::uint64_t split = op.split % (len + 1);
      dst = WARD_TRY(tx.declare(h.at(blk), split));
      WARD_TRY(tx.declare(h.at(blk + split), len - split));
    }
    for (std::uint64_t i = 0; i < len; ++i) dst[i] = pattern(pat, static_cast<std::uint64_t>(op.cell), i);
    Cell* wc = WARD_TRY(tx.declare(&root->cells[op.cell]));
    *wc = Cell{pat, len, blk};
  }
  std::uint64_t* last = WARD_TRY(tx.declare(&root->last));
  *last = t;
  return {};
}

[[noreturn]] void writer(const HeapOptions& o, std::uint64_t seed, int fd) {
  auto h = Heap::open(o);
  if (!h) {
    std::fprintf(stderr, "writer: %s\n", h.error().detail.c_str());
    _exit(3);
  }
  Heap& heap = **h;
  if (heap.root() == 0) {
    auto tx = heap.begin();
    auto a = tx->alloc(sizeof(Root));
    if (!a) _exit(3);
    std::memset(a->data, 0, sizeof(Root));
    if (!tx->set_root(a->off) || !tx->commit()) _exit(3);
  }
  for (std::uint64_t t = heap.at<Root>(heap.root())->last + 1;; ++t) {
    if (aborts_first(seed, t)) {
      auto tx = heap.begin();
      (void)run_plan(heap, *tx, ~t, ~t, plan(seed, ~t));
      if (t % 2) tx->abort();  // else the destructor aborts
    }
    auto tx = heap.begin();
    auto r = run_plan(heap, *tx, t, t, plan(seed, t));
    if (!r || !tx->commit()) {
      std::fprintf(stderr, "writer: transaction %llu: %s\n", static_cast<unsigned long long>(t), r ? "commit" : r.error().detail.c_str());
      _exit(4);
    }
    if (write(fd, &t, sizeof t) != sizeof t) _exit(5);
  }
}

struct ModelCell {
  std::uint64_t tx = 0, len = 0;
};

// Opens the heap (recovering it), checks it against the model advanced to its `last`, which must
// be the last reported commit or the one after it (killed before reporting). Returns `last`.
std::uint64_t verify(const HeapOptions& o, std::uint64_t seed, std::uint64_t reported, std::uint64_t& model_last,
                     std::vector<ModelCell>& model, std::uint64_t& rollbacks) {
  HeapRecovery rep;
  auto h = Heap::open(o, &rep);
  EXPECT_TRUE(h) << h.error().detail;
  if (!h) return model_last;
  rollbacks += rep.rolled_back;
  const Heap& heap = **h;
  if (heap.root() == 0) {
    EXPECT_EQ(reported, 0u);
    return 0;
  }
  const Root& root = *heap.at<Root>(heap.root());
  EXPECT_GE(root.last, reported) << "a committed transaction is missing";
  EXPECT_LE(root.last, reported + 1) << "a transaction never begun is present";
  EXPECT_GE(root.last, model_last);
  for (std::uint64_t t = model_last + 1; t <= root.last; ++t)
    for (const Op& op : plan(seed, t)) {
      ModelCell& m = model[static_cast<std::size_t>(op.cell)];
      if (op.replace || m.tx == 0) m.len = op.len;
      m.tx = t;
    }
  model_last = std::max(model_last, root.last);
  std::uint64_t live = 1;
  for (int i = 0; i < kCells; ++i) {
    const Cell& c = root.cells[i];
    const ModelCell& m = model[static_cast<std::size_t>(i)];
    EXPECT_EQ(c.tx, m.tx) << "cell " << i;
    EXPECT_EQ(c.len, m.len) << "cell " << i;
    if (c.tx != m.tx || c.len != m.len || m.tx == 0) continue;
    ++live;
    auto size = heap.allocation_size(c.block);
    EXPECT_TRUE(size && *size >= c.len) << "cell " << i << ": its block is not a live allocation";
    if (!size) continue;
    for (std::uint64_t k = 0; k < c.len; ++k)
      if (heap.at(c.block)[k] != pattern(c.tx, static_cast<std::uint64_t>(i), k)) {
        ADD_FAILURE() << "cell " << i << " (transaction " << c.tx << ") is torn at byte " << k;
        break;
      }
  }
  auto s = heap.check();
  EXPECT_TRUE(s) << s.error().detail;
  if (s) {
    EXPECT_EQ(s->live_blocks, live) << "allocations leaked or lost";
  }
  return root.last;
}

// CI runs 300 kills; WARD_HEAP_KILLS=N runs more.
TEST(RioHeapCrash, RandomKillsLeaveEveryTransactionAllOrNothing) {
  WorkDir w;
  const auto o = opts(w.p / "kills.heap");
  int kills = 300;
  if (const char* env = std::getenv("WARD_HEAP_KILLS")) kills = std::max(1, std::atoi(env));
  const std::uint64_t seed = 11;
  std::mt19937_64 rng(seed);
  std::vector<ModelCell> model(kCells);
  std::uint64_t reported = 0, model_last = 0, rollbacks = 0, killed_running = 0;
  for (int k = 0; k < kills && !HasFailure(); ++k) {
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
    Child c;
    c.pid = fork();
    if (c.pid == 0) {
      close(fds[0]);
      writer(o, seed, fds[1]);
    }
    close(fds[1]);
    // Mostly mid-run; one kill in ten lands while the writer opens (and recovers) the heap. A
    // mid-run kill waits for the writer's first commit (at most 10 s), so that it lands among
    // commits however slowly the writer starts: under ASan, on a machine that faults memory in at
    // ~300 MB/s, 3 ms after the fork was mostly still the start (14 commits in 300 kills).
    const bool opening = rng() % 10 == 0;
    if (!opening) {
      pollfd first{fds[0], POLLIN, 0};
      (void)poll(&first, 1, 10'000);
    }
    usleep(static_cast<useconds_t>(opening ? rng() % 200 : rng() % 3000));
    const int st = c.stop();
    killed_running += WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
    ASSERT_TRUE(WIFSIGNALED(st)) << "the writer stopped by itself: status " << st;
    std::uint64_t t = 0;
    while (read(fds[0], &t, sizeof t) == sizeof t) reported = std::max(reported, t);
    close(fds[0]);
    reported = verify(o, seed, reported, model_last, model, rollbacks);
  }
  EXPECT_GT(model_last, static_cast<std::uint64_t>(kills)) << "the writer should commit more than one transaction per kill";
  EXPECT_GT(rollbacks, 0u) << "some kills should land inside a transaction";
  std::printf("rio heap: %d kills, %llu transactions committed and verified, %llu open transactions rolled back at open\n",
              kills, static_cast<unsigned long long>(model_last), static_cast<unsigned long long>(rollbacks));
}

// Recovery killed at chosen instants and run again ends where one uninterrupted recovery ends.
TEST(RioHeapCrash, RecoveryKilledMidwayThenRerun) {
  WorkDir w;
  const auto o = opts(w.p / "rerun.heap", 64 << 20, 24 << 20);
  constexpr std::size_t kBytes = 16 << 20;
  Offset root = 0;
  {
    auto h = Heap::open(o);
    ASSERT_TRUE(h) << h.error().detail;
    root = make_rooted(**h, kBytes, 8);
  }
  auto scribble = [&] {
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    Child c;
    c.pid = fork();
    if (c.pid == 0) scribble_and_wait(o, kBytes, fds[1]);
    close(fds[1]);
    ASSERT_TRUE(wait_readable(fds[0], 60000)) << "the scribbler never finished";
    close(fds[0]);
  };
  scribble();
  // Recovery restores newest first: the last 4 KiB first, the first 4 KiB last.
  const std::uint64_t log_word_at = 64;
  auto state = [&] {
    std::uint64_t word = 0;
    std::memcpy(&word, read_file(o.path, log_word_at, 8).data(), 8);
    if ((word & 0xffffff) == 0) return 2;  // finished
    return read_file(o.path, root + kBytes - 1, 1)[0] == std::byte{0xee} ? 0 : 1;  // not started / midway
  };
  ASSERT_EQ(state(), 0);
  std::uint64_t lo = 0, hi = 50000;  // microseconds: bisect towards the window in which recovery runs
  int midway = 0, finished = 0, early = 0;
  std::mt19937_64 rng(5);
  for (int attempt = 0; attempt < 200 && midway < 5; ++attempt) {
    const std::uint64_t d = lo + (hi > lo ? rng() % (hi - lo + 1) : 0);
    Child c;
    c.pid = fork();
    if (c.pid == 0) _exit(Heap::open(o) ? 0 : 1);
    usleep(static_cast<useconds_t>(d));
    const int st = c.stop();
    ASSERT_FALSE(WIFEXITED(st) && WEXITSTATUS(st) != 0) << "recovery failed in the child";
    switch (state()) {
      case 0: ++early, lo = d; break;
      case 1: ++midway; break;
      default:
        ++finished, hi = d;
        scribble();
        if (HasFatalFailure()) return;
    }
  }
  EXPECT_GE(midway, 1) << "no recovery was caught midway (" << early << " before it began, " << finished << " after it ended)";
  HeapRecovery rep;
  auto h = Heap::open(o, &rep);
  ASSERT_TRUE(h) << h.error().detail;
  EXPECT_TRUE(has_pattern(**h, root, kBytes, 8)) << "recovery rerun after kills must restore every byte";
  auto s = (*h)->check();
  ASSERT_TRUE(s) << s.error().detail;
  EXPECT_EQ(s->live_blocks, 1u);
  std::printf("heap recovery rerun: %d recoveries killed midway, %d before they began, %d finished; the final state is whole\n",
              midway, early, finished);
}

}  // namespace
