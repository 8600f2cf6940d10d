// What a file system prints (its stdout and stderr), carried to a descriptor of the host's as
// text that cannot drive a terminal, each line prefixed.
//
// Why not give the file system the host's stderr, as before: its process is as hostile as every
// byte it sends. With the host's stderr it keeps the user's terminal after `ward fuse` went to the
// background (the first instance inherited it; the shell's `$(...)` or a pipe reader then never sees
// end of file), it writes escape sequences the terminal acts on (title, colours, key remapping;
// some terminals answer queries into their own input), and its raw bytes interleave with ward's
// log, where a line of its own can pass for one of ward's. Through a pipe drained by a thread of
// ward's, each of its lines starts with the prefix and only printable text reaches the host.
//
// Contract. FsOutput::start makes the pipe and the thread; write_end() is the descriptor each
// instance gets as its stdout and stderr. ward keeps write_end() open across restarts (so the pipe
// does not end when an instance does; one stream for the mount's life). The thread writes to
// `out` by number, not to a copy: a host that later puts another file at that number (the CLI
// puts /dev/null or the --log file over its stderr once in the background) is followed, and
// nothing of the host's old file stays held. stop() (and the destructor) wakes the thread, which
// forwards what the pipe still holds without waiting for more, ends an unfinished line, and exits;
// stop() joins it. The thread's only wait other than its poll is its write to `out`: a write that
// blocks (a stopped terminal, a pager that does not read) holds the thread, then the file system's
// own writes once the pipe is full (as when it had the terminal itself), and stop(). The relay's
// loop never waits for it. `out` < 0: nothing is forwarded, no thread, and write_end() is
// /dev/null. Every signal is blocked in the thread (a write to a closed pipe leaves a SIGPIPE
// pending there rather than ending the host). start/stop/write_end from one thread (the relay's);
// the forwarding thread touches only its own state. Move-only.
//
// Syslog. A file system that daemonizes often stops printing and logs through syslog(3) instead,
// to /dev/log; in the sandbox there is none, and what it said was lost (gocryptfs: eight "Unix
// syslog delivery error" lines at every start, then silence, integrity errors included). So
// new_syslog() makes, for each instance, an unbound datagram socket: the thread reads one
// descriptor of it, the instance's sandbox binds the other at its own /dev/log (sandbox.h), so
// the socket's name lives in the sandbox's tmpfs and nothing of it is ever on the host's disk.
// Each datagram becomes one line, "PREFIX syslog LEVEL: TAG[PID]: MESSAGE" (syslog_text), through
// the same text rules; at most 64 KiB of each (longer ones are cut, and say so). A file system
// that sends faster than the thread writes fills the socket's queue and then waits in its own
// send, as with the pipe. The thread drains the previous instance's socket before it takes the
// next one's. new_syslog() from the thread that calls start/stop.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "core/unique_fd.h"
#include "ward/core/error.h"

namespace ward::fuse::detail {

// The text for a stream of bytes, as FsOutput writes it; a class of its own so it can be tested
// without a process. Kept as they are: printable ASCII, tab, newline, and well-formed UTF-8 other
// than the C1 controls (U+0080..U+009F, which 8-bit terminals act on as ESC sequences) and the
// bidirectional overrides and isolates (U+202A..U+202E, U+2066..U+2069, which make a line read
// otherwise than its bytes). Every other byte, ESC and CR included, becomes `\xHH`. `prefix`
// starts every line that has at least one byte. A UTF-8 sequence cut at a chunk's end is held
// for the next chunk.
class OutputText {
 public:
  explicit OutputText(std::string prefix) : prefix_(std::move(prefix)) {}
  // Appends to `out` the text for `chunk`.
  void feed(std::string_view chunk, std::string& out);
  // The end of the stream: a held partial sequence as escapes, and a newline if a line is open.
  void finish(std::string& out);

 private:
  void put(unsigned char c, std::string& out);        // one byte that needs no decoding
  void escape(std::string_view bytes, std::string& out);
  void start_line(std::string& out);
  std::string prefix_;
  std::string held_;  // the start of a UTF-8 sequence the last chunk cut
  bool line_open_ = false;
};

// A syslog datagram as FsOutput shows it, before the text rules: "syslog " and a level word from
// "<PRI>" ("err: ", "info: "...; "?: " without a valid one, the text then kept whole), the local
// timestamp syslog(3) and Go's log/syslog put after it ("Mmm dd hh:mm:ss ") dropped, trailing
// newlines and NULs dropped (one datagram, one line).
[[nodiscard]] std::string syslog_text(std::string_view datagram);

class FsOutput {
 public:
  FsOutput();
  FsOutput(FsOutput&&) noexcept;
  FsOutput& operator=(FsOutput&& o) noexcept;  // stops this one first
  ~FsOutput();

  // `prefix` starts each forwarded line ("ward fuse MNT: fs: "). Errors: the pipe, eventfd or
  // /dev/null cannot be made (load_failed).
  static Result<FsOutput> start(int out, std::string prefix);
  int write_end() const;  // -1 before start()
  // A new instance's syslog socket (see above): the descriptor for its sandbox to bind; the thread
  // reads from now on a descriptor of its own of the same socket. Invalid (no /dev/log for the
  // instance) when nothing is forwarded (`out` < 0) or the socket cannot be made.
  UniqueFd new_syslog();
  void stop();

 private:
  struct State;
  std::unique_ptr<State> state_;
  std::thread thread_;
};

}  // namespace ward::fuse::detail
