// What a file system prints, as ward forwards it (fs_output.h): the text a byte stream becomes
// (no process needed), and the forwarding thread over a real pipe.
#include "fuse/fs_output.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <string>

#include <gtest/gtest.h>

namespace {

using ward::fuse::detail::FsOutput;
using ward::fuse::detail::OutputText;
using ward::fuse::detail::syslog_text;

std::string shown(std::initializer_list<std::string_view> chunks, bool finish = true) {
  OutputText t("P: ");
  std::string out;
  for (auto c : chunks) t.feed(c, out);
  if (finish) t.finish(out);
  return out;
}

TEST(FsOutputText, EachLineIsPrefixedAndAnOpenLineIsEndedAtTheEnd) {
  EXPECT_EQ(shown({"one\ntwo\n"}), "P: one\nP: two\n");
  EXPECT_EQ(shown({"a\n\nb"}), "P: a\nP: \nP: b\n");
  EXPECT_EQ(shown({"prompt: "}, false), "P: prompt: ");  // forwarded before its newline comes
  EXPECT_EQ(shown({"par", "tial\nnext"}), "P: partial\nP: next\n");
  EXPECT_EQ(shown({""}), "");
}

TEST(FsOutputText, ControlBytesAreEscapedAndTextIsKept) {
  EXPECT_EQ(shown({"\x1b]0;owned\x07\n"}), "P: \\x1b]0;owned\\x07\n");
  EXPECT_EQ(shown({"a\rb\tc\x7f\n"}), "P: a\\x0db\tc\\x7f\n");
  EXPECT_EQ(shown({"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82\n"}), "P: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82\n");
}

TEST(FsOutputText, C1ControlsBidiOverridesAndBadUtf8AreEscaped) {
  EXPECT_EQ(shown({"\xc2\x9b" "31m\n"}), "P: \\xc2\\x9b31m\n");                 // U+009B, CSI
  EXPECT_EQ(shown({"\xe2\x80\xae" "x\n"}), "P: \\xe2\\x80\\xaex\n");            // U+202E
  EXPECT_EQ(shown({"\xe2\x81\xa6" "x\n"}), "P: \\xe2\\x81\\xa6x\n");            // U+2066
  EXPECT_EQ(shown({"\x9b\n"}), "P: \\x9b\n");                                   // a raw 8-bit CSI
  EXPECT_EQ(shown({"\xff\xfe\n"}), "P: \\xff\\xfe\n");
  EXPECT_EQ(shown({"\xc0\xaf\n"}), "P: \\xc0\\xaf\n");                          // overlong '/'
  EXPECT_EQ(shown({"\xed\xa0\x80\n"}), "P: \\xed\\xa0\\x80\n");                 // a surrogate
  EXPECT_EQ(shown({"\xf4\x90\x80\x80\n"}), "P: \\xf4\\x90\\x80\\x80\n");        // past U+10FFFF
  EXPECT_EQ(shown({"\xe2\x82" "A\n"}), "P: \\xe2\\x82A\n");                     // cut short
}

TEST(FsOutputText, ASequenceCutBetweenChunksIsJoined) {
  EXPECT_EQ(shown({"x\xe2", "\x82\xac\n"}), "P: x\xe2\x82\xac\n");
  EXPECT_EQ(shown({"\xf0\x9f", "\x99", "\x82\n"}), "P: \xf0\x9f\x99\x82\n");
  EXPECT_EQ(shown({"\xe2\x80", "\xae\n"}), "P: \\xe2\\x80\\xae\n");
  EXPECT_EQ(shown({"x\xe2\x82"}), "P: x\\xe2\\x82\n");  // the stream ended inside it
}

// The thread over a real pipe: what is written reaches `out` as text, and stop() forwards what
// the pipe still holds and ends the open line.
TEST(FsOutput, ForwardsThroughThePipeAndFlushesAtStop) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  auto fwd = FsOutput::start(p[1], "fs: ");
  ASSERT_TRUE(fwd) << fwd.error().detail;
  ASSERT_GE(fwd->write_end(), 0);
  ASSERT_EQ(::write(fwd->write_end(), "hello\x1b\n", 7), 7);
  std::string got;
  char b[256];
  for (int i = 0; i < 500 && got.find('\n') == std::string::npos; ++i) {
    pollfd pf{p[0], POLLIN, 0};
    if (::poll(&pf, 1, 10) == 1)
      if (ssize_t n = ::read(p[0], b, sizeof b); n > 0) got.append(b, static_cast<std::size_t>(n));
  }
  EXPECT_EQ(got, "fs: hello\\x1b\n");
  ASSERT_EQ(::write(fwd->write_end(), "no newline", 10), 10);
  fwd->stop();
  EXPECT_EQ(fwd->write_end(), -1);
  got.clear();
  for (ssize_t n; (n = ::read(p[0], b, sizeof b)) > 0;) got.append(b, static_cast<std::size_t>(n));
  EXPECT_EQ(got, "fs: no newline\n");
  ::close(p[0]);
  ::close(p[1]);
}

// What syslog(3) (glibc) and Go's log/syslog send: the level is a word, the timestamp goes.
TEST(FsOutputSyslog, TheLevelIsSaidAndTheTimestampDropped) {
  EXPECT_EQ(syslog_text("<27>Dec  3 09:00:01 fs[12]: block 7 is corrupt\n"), "syslog err: fs[12]: block 7 is corrupt");
  EXPECT_EQ(syslog_text("<14>Nov 30 23:59:59 fs: hello"), "syslog info: fs: hello");
  EXPECT_EQ(syslog_text("<191>x"), "syslog debug: x");
  // Not a priority: kept as sent.
  EXPECT_EQ(syslog_text("<192>x"), "syslog ?: <192>x");
  EXPECT_EQ(syslog_text("<1a>x"), "syslog ?: <1a>x");
  EXPECT_EQ(syslog_text("plain words"), "syslog ?: plain words");
  EXPECT_EQ(syslog_text(""), "syslog ?: ");
  EXPECT_EQ(syslog_text("<3>"), "syslog err: ");
  // A timestamp only where one is: "Dec  3 " of a message is not dropped without its time.
  EXPECT_EQ(syslog_text("<30>Dec  3 is a date"), "syslog info: Dec  3 is a date");
}

// The socket: each datagram one line through the text rules, in the same stream as the pipe, a
// long one cut and said to be; a new instance's socket replaces the last one's, whose datagrams
// are forwarded first.
TEST(FsOutput, SyslogDatagramsAreLines) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);  // the thread's writes block while the pipe is full
  ASSERT_EQ(::fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
  auto fwd = FsOutput::start(p[1], "fs: ");
  ASSERT_TRUE(fwd) << fwd.error().detail;
  char dir[] = "/tmp/ward-fs-output-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  // What a sandbox does with its descriptor: binds it at its /dev/log.
  auto bound = [&](int n) {
    ward::UniqueFd s = fwd->new_syslog();
    EXPECT_TRUE(s.valid());
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const std::string path = std::string(dir) + "/log" + std::to_string(n);
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    EXPECT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
    return path;
  };
  auto send_to = [](const std::string& path, const std::string& what) {
    int c = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    EXPECT_EQ(::sendto(c, what.data(), what.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a),
              static_cast<ssize_t>(what.size())) << std::strerror(errno);
    ::close(c);
  };
  auto read_until = [&](std::size_t size) {
    std::string got;
    char b[4096];
    for (int i = 0; i < 500 && got.size() < size; ++i) {
      pollfd pf{p[0], POLLIN, 0};
      if (::poll(&pf, 1, 10) == 1)
        if (ssize_t n = ::read(p[0], b, sizeof b); n > 0) got.append(b, static_cast<std::size_t>(n));
    }
    return got;
  };
  const std::string first = bound(1);
  send_to(first, "<11>Dec  3 09:00:01 fs[5]: two\nlines \x1b[31m");
  send_to(first, std::string(100'000, 'b'));  // more than the thread reads at once
  std::string want = "fs: syslog err: fs[5]: two\nfs: lines \\x1b[31m\nfs: syslog ?: " + std::string(65536, 'b') +
                     " [cut at 65536 bytes]\n";
  EXPECT_EQ(read_until(want.size()), want);
  send_to(first, "<14>last words");
  const std::string second = bound(2);
  send_to(second, "<13>next instance");
  want = "fs: syslog info: last words\nfs: syslog notice: next instance\n";
  EXPECT_EQ(read_until(want.size()), want);
  fwd->stop();
  for (const auto& path : {first, second}) ::unlink(path.c_str());
  ::rmdir(dir);
  ::close(p[0]);
  ::close(p[1]);
}

// out < 0: nothing is forwarded, and the file system still has somewhere to write.
TEST(FsOutput, DiscardingGivesDevNull) {
  auto fwd = FsOutput::start(-1, "fs: ");
  ASSERT_TRUE(fwd) << fwd.error().detail;
  ASSERT_GE(fwd->write_end(), 0);
  EXPECT_EQ(::write(fwd->write_end(), "x\n", 2), 2);
  EXPECT_FALSE(fwd->new_syslog().valid()) << "no socket: its /dev/log stays absent";
}

}  // namespace
