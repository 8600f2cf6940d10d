// ward-example-zstd: Debian's libzstd.so.1, unmodified, as a ward extension.
//
//   ward-example-zstd [FILE] [--level N]      (default FILE: /usr/share/common-licenses/GPL-3)
//
// Compresses FILE one-shot (ZSTD_compress with a capacity, only the produced bytes come back) and
// streaming (ZSTD_compressStream2 over ZSTD_inBuffer / ZSTD_outBuffer structs in sandbox
// memory), decompresses both through the library again, checks the round trips, and says what
// ward did. Exit status 0 when every round trip holds, 1 otherwise, 2 for bad arguments.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "zstd/zstd_api.h"
#include "zstd/zstd_stream.h"

namespace {

using Bytes = std::vector<char>;

int usage(std::FILE* to, int status) {
  std::fprintf(to,
               "usage: ward-example-zstd [FILE] [--level N]\n"
               "Compresses FILE (default /usr/share/common-licenses/GPL-3) with libzstd running in a\n"
               "sandboxed child process: one-shot and streaming, each decompressed again and compared.\n"
               "Exit status: 0 round trips hold, 1 a failure, 2 bad arguments.\n");
  return status;
}

int failed(const ward::Error& e) {
  std::fprintf(stderr, "ward-example-zstd: %s\n", e.message().c_str());
  return 1;
}

// zstd's name for an error code, asked of the library in the child.
template <class Lib>
std::string error_name(Lib& z, std::size_t code) {
  auto name = z->ZSTD_getErrorName(code);
  return name ? name->unverified_value_i_trust_it().value_or("?") : name.error().message();
}

ward::Result<ward::Policy> policy_for(std::size_t size) {
  // The arena carries a call's in and out buffers: room for the file and its bound, twice over.
  const std::uint64_t arena = std::max<std::uint64_t>(4ull << 20, 4 * (size + (size >> 7) + (1 << 16)));
  // High levels on large files take a while: the call timeout is generous.
  return ward::Policy::builder().timeout(std::chrono::minutes(2)).arena_size(arena).sandbox_memory(2ull << 20).build();
}

int run(const std::string& path, int level) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "ward-example-zstd: cannot read %s\n", path.c_str());
    return 1;
  }
  const Bytes input((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto policy = policy_for(input.size());
  if (!policy) return failed(policy.error());

  // One-shot, with a context-free call: capacities are parameters.
  auto z = ward::Instance<zstd_api>::open("libzstd.so.1", *policy);
  if (!z) return failed(z.error());
  std::printf("libzstd %u loaded unmodified into child process %d (this process is %d)\n",
              (*z)->ZSTD_versionNumber()->unverified_value_i_trust_it(), static_cast<int>(ward::pid_of(z->domain())),
              static_cast<int>(getpid()));
  // The bound is the library's word: it only sizes a host buffer, which ward never overruns.
  auto bound = (*z)->ZSTD_compressBound(input.size());
  if (!bound) return failed(bound.error());
  Bytes packed(bound->unverified_value_i_trust_it());
  auto n = (*z)->ZSTD_compress(packed.data(), packed.size(), input.data(), input.size(), level);
  if (!n) return failed(n.error());
  const std::size_t produced = n->unverified_value_i_trust_it();
  auto is_error = (*z)->ZSTD_isError(produced);
  if (!is_error) return failed(is_error.error());
  if (is_error->unverified_value_i_trust_it()) {
    std::fprintf(stderr, "ward-example-zstd: ZSTD_compress: %s\n", error_name(*z, produced).c_str());
    return 1;
  }
  packed.resize(produced);  // .filled(ward::result): ward checked produced <= capacity
  Bytes back(input.size() + 1);
  auto m = (*z)->ZSTD_decompress(back.data(), back.size(), packed.data(), packed.size());
  if (!m) return failed(m.error());
  back.resize(std::min(back.size(), m->unverified_value_i_trust_it()));
  const bool oneshot_ok = m->unverified_value_i_trust_it() == input.size() && back == input;
  std::printf("one-shot:  %zu -> %zu bytes (level %d), round trip %s\n", input.size(), packed.size(), level,
              oneshot_ok ? "ok" : "FAILED");

  // Streaming: the structs and data windows live in sandbox memory the library reads and writes
  // in place; positions are read back tainted and checked before use.
  auto s = ward::Instance<zstd_stream_api>::open("libzstd.so.1", *policy);
  if (!s) return failed(s.error());
  auto streamed = zstd_ward::compress_stream(*s, input, {.level = level, .checksum = true});
  if (!streamed) return failed(streamed.error());
  if (streamed->zstd_error) {
    std::fprintf(stderr, "ward-example-zstd: ZSTD_compressStream2: %s\n", error_name(*s, streamed->zstd_error).c_str());
    return 1;
  }
  auto plain = zstd_ward::decompress_stream(*s, streamed->bytes, {});
  if (!plain) return failed(plain.error());
  const bool stream_ok = !plain->zstd_error && !plain->truncated && plain->bytes == input;
  std::printf("streaming: %zu -> %zu bytes in %zu calls (checksummed), %zu calls back, round trip %s\n",
              input.size(), streamed->bytes.size(), streamed->steps.size(), plain->steps.size(),
              stream_ok ? "ok" : "FAILED");
  std::printf("ward: every call crossed to the sandboxed child; results came back tainted and were\n"
              "      checked (sizes against capacities, stream positions against their buffers)\n");
  return oneshot_ok && stream_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path = "/usr/share/common-licenses/GPL-3";
  int level = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") return usage(stdout, 0);
    if (a == "--level" && i + 1 < argc) {
      char* end = nullptr;
      const long v = std::strtol(argv[++i], &end, 10);
      if (*end || v < -(1 << 17) || v > 22) return usage(stderr, 2);  // zstd's own range
      level = static_cast<int>(v);
    } else if (!a.empty() && a[0] == '-') {
      return usage(stderr, 2);
    } else {
      path = a;
    }
  }
  return run(path, level);
}
