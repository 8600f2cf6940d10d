#include "rio/power_loss.h"

#include "ward/rio/region.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

namespace ward::rio {

namespace {

std::string sys(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace

Result<std::string> PowerLossSim::read_now() const {
  const int fd = ::open(region_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(Errc::load_failed, "power loss sim: " + sys(region_.string()));
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return fail(Errc::load_failed, "power loss sim: " + sys("read " + region_.string()));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

Result<void> PowerLossSim::take_snapshot() {
  snapshot_ = WARD_TRY(read_now());
  return {};
}

Result<void> PowerLossSim::begin_durability(std::span<const std::uint64_t> pages) {
  const std::string now = WARD_TRY(read_now());
  if (now.size() != snapshot_.size()) return fail(Errc::misuse, "power loss sim: the region file changed size since the snapshot");
  pending_ = snapshot_;
  for (std::uint64_t p : pages) {
    const std::uint64_t off = p * kPage;
    if (off >= now.size()) return fail(Errc::misuse, "power loss sim: page " + std::to_string(p) + " is past the region");
    std::memcpy(pending_.data() + off, now.data() + off, static_cast<std::size_t>(std::min<std::uint64_t>(kPage, now.size() - off)));
  }
  pending_set_ = true;
  return {};
}

void PowerLossSim::end_durability() {
  if (!pending_set_) return;
  snapshot_ = std::move(pending_);
  pending_set_ = false;
}

Result<std::vector<std::uint64_t>> PowerLossSim::dirty_pages() const {
  const std::string now = WARD_TRY(read_now());
  if (now.size() != snapshot_.size()) return fail(Errc::misuse, "power loss sim: the region file changed size since the snapshot");
  std::vector<std::uint64_t> pages;
  for (std::uint64_t off = 0; off < now.size(); off += kPage) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kPage, now.size() - off));
    if (std::memcmp(now.data() + off, snapshot_.data() + off, n) != 0) pages.push_back(off / kPage);
  }
  return pages;
}

Result<void> PowerLossSim::build_image(const std::vector<std::uint64_t>& pages, const std::filesystem::path& out) const {
  const std::string now = WARD_TRY(read_now());
  std::string img = snapshot_;
  for (std::uint64_t p : pages) {
    const std::uint64_t off = p * kPage;
    if (off >= img.size()) return fail(Errc::misuse, "power loss sim: page " + std::to_string(p) + " is past the region");
    std::memcpy(img.data() + off, now.data() + off, static_cast<std::size_t>(std::min<std::uint64_t>(kPage, img.size() - off)));
  }
  if (img.size() >= sizeof(layout::Header)) {
    auto* h = reinterpret_cast<layout::Header*>(img.data());
    for (auto& st : h->state) {
      if (st.checksum != header_state_checksum(st)) continue;  // a damaged copy stays damaged
      st.boot_id[0] = ~st.boot_id[0];
      st.checksum = header_state_checksum(st);
    }
  }
  const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return fail(Errc::load_failed, "power loss sim: " + sys(out.string()));
  std::size_t done = 0;
  while (done < img.size()) {
    const ssize_t w = ::write(fd, img.data() + done, img.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      ::close(fd);
      return fail(Errc::load_failed, "power loss sim: " + sys("write " + out.string()));
    }
    done += static_cast<std::size_t>(w);
  }
  ::close(fd);
  return {};
}

std::vector<std::vector<std::uint64_t>> power_loss_subsets(const std::vector<std::uint64_t>& pages, std::size_t max_exhaustive,
                                                           std::size_t random_count, std::uint64_t seed) {
  std::vector<std::vector<std::uint64_t>> out;
  if (pages.size() <= max_exhaustive && pages.size() < 63) {
    for (std::uint64_t mask = 0; mask < (1ull << pages.size()); ++mask) {
      std::vector<std::uint64_t> s;
      for (std::size_t i = 0; i < pages.size(); ++i)
        if (mask >> i & 1) s.push_back(pages[i]);
      out.push_back(std::move(s));
    }
    return out;
  }
  std::mt19937_64 rng(seed);
  const double keep[] = {0.5, 0.125, 0.875};
  for (std::size_t k = 0; k < random_count; ++k) {
    std::bernoulli_distribution d(keep[k % 3]);
    std::vector<std::uint64_t> s;
    for (std::uint64_t p : pages)
      if (d(rng)) s.push_back(p);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace ward::rio
