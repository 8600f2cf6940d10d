// What a file system prints, as ward forwards it (fs_output.h): the text a byte stream becomes
// (no process needed), and the forwarding thread over a real pipe.
#include "fuse/fs_output.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

namespace {

using ward::fuse::detail::FsOutput;
using ward::fuse::detail::OutputText;

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

// out < 0: nothing is forwarded, and the file system still has somewhere to write.
TEST(FsOutput, DiscardingGivesDevNull) {
  auto fwd = FsOutput::start(-1, "fs: ");
  ASSERT_TRUE(fwd) << fwd.error().detail;
  ASSERT_GE(fwd->write_end(), 0);
  EXPECT_EQ(::write(fwd->write_end(), "x\n", 2), 2);
}

}  // namespace
