#include "rio/writeback.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ward::rio::detail {
namespace L = layout;

Result<void> check_relative_path(std::string_view p) {
  if (p.empty()) return fail(Errc::misuse, "rio: empty file path");
  if (p.size() >= L::kPathMax) return fail(Errc::misuse, "rio: file path longer than " + std::to_string(L::kPathMax - 1));
  if (p.front() == '/') return fail(Errc::misuse, "rio: file paths are relative to the backing directory: " + std::string(p));
  if (p.find('\0') != std::string_view::npos) return fail(Errc::misuse, "rio: file path contains NUL");
  std::size_t start = 0;
  while (start <= p.size()) {
    const std::size_t end = std::min(p.find('/', start), p.size());
    const std::string_view part = p.substr(start, end - start);
    if (part.empty() || part == "." || part == "..")
      return fail(Errc::misuse, "rio: file path must not contain empty, '.' or '..' components: " + std::string(p));
    start = end + 1;
  }
  return {};
}

Result<int> open_backing(const std::filesystem::path& dir, const std::string& path, bool create) {
  const auto full = dir / path;
  if (create) {
    std::error_code ec;
    std::filesystem::create_directories(full.parent_path(), ec);
  }
  const int fd = ::open(full.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
  if (fd < 0) {
    if (errno == ENOENT && !create)
      return fail(Errc::load_failed, path + ": the backing file was removed while the cache held dirty data");
    return fail(Errc::load_failed, path + ": " + std::strerror(errno));
  }
  return fd;
}

Result<void> write_blocks(int fd, const std::string& path, std::uint64_t size, std::span<const BlockWrite> blocks,
                         bool sync) {
  for (const BlockWrite& b : blocks) {
    std::uint64_t done = 0;
    while (done < b.bytes.size()) {
      const ssize_t w = pwrite(fd, b.bytes.data() + done, b.bytes.size() - done, static_cast<off_t>(b.offset + done));
      if (w < 0) {
        if (errno == EINTR) continue;
        return fail(Errc::limit, path + ": write-back failed: " + std::strerror(errno));
      }
      done += static_cast<std::uint64_t>(w);
    }
  }
  if (ftruncate(fd, static_cast<off_t>(size)) != 0)
    return fail(Errc::limit, path + ": setting the size failed: " + std::strerror(errno));
  if (!sync) return {};
  if (fdatasync(fd) != 0) return fail(Errc::limit, path + ": fdatasync failed: " + std::strerror(errno));
  if (on_data_sync) on_data_sync(path);
  return {};
}

Result<void> write_back(Region& r, int fd, const std::string& path, std::uint64_t size,
                        const std::vector<std::uint32_t>& slots) {
  const std::uint64_t bs = r.block_size();
  // Only blocks written out whole become clean. A block past the end, or reaching past it, can
  // belong to a write still in progress (the size moves after its blocks are published): it
  // stays dirty until a write-back sees all of it inside the file.
  std::vector<std::uint32_t> whole;
  std::vector<BlockWrite> writes;
  for (std::uint32_t s : slots) {
    const L::Entry& e = r.entry(s);
    const std::uint64_t start = e.block * bs;
    if (start >= size) continue;
    const std::uint64_t n = std::min<std::uint64_t>(e.len, size - start);
    if (n == e.len) whole.push_back(s);
    writes.push_back({start, {r.block(s), n}});
  }
  WARD_TRY(write_blocks(fd, path, size, writes));
  for (std::uint32_t s : whole)
    if (L::word_state(r.entry(s).word.load()) == L::kDirty) r.set_state(s, L::kClean);
  return {};
}

Result<void> sync_dir(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail(Errc::limit, dir.string() + ": " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  if (rc != 0) return fail(Errc::limit, dir.string() + ": fsync: " + std::strerror(e));
  return {};
}

}  // namespace ward::rio::detail
