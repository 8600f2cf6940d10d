#!/usr/bin/env bash
# Installs what building and testing ward needs, from Debian's packages. Idempotent: installs
# only what is missing, and does nothing (not even `apt-get update`) when all is present.
# Works on a bare Debian 12 (the debian:12 image: no make, no compiler, no sudo needed as root):
# it needs only bash, dpkg and apt-get, so README's first command is `./scripts/setup.sh && make run`.
set -euo pipefail

packages=(
  make cmake g++ gcc pkg-config      # toolchain
  libseccomp-dev                     # seccomp filters for process domains
  libffi-dev                         # the domain helper calls plugins and builds service stubs
  libcli11-dev libfmt-dev            # the ward CLI
  libxxhash-dev                      # Rio: block checksums
  libpmemobj-dev                     # `ward bench rio`: PMDK's transactions beside rio::Heap's
  libgtest-dev libgmock-dev          # tests
  libbenchmark-dev                   # `ward bench`
  clang-16 libclang-rt-16-dev        # fuzzing (libFuzzer; clang 14 cannot compile std::expected)
  llvm-16                            # llvm-symbolizer: readable stacks in sanitizer reports
  # Real C libraries ward runs unmodified (examples/real, tests labelled real_extension); the
  # tests also call each one directly, in-process, to compare results call for call.
  libzstd-dev libsqlite3-dev libxml2-dev libyaml-dev frei0r-plugins frei0r-plugins-dev ladspa-sdk
  # `ward fuse` (docs/fuse.md): fusermount3 and libfuse3's headers, and the unmodified FUSE file
  # systems its tests mount through ward (fuse-overlayfs: libfuse3, low-level API).
  fuse3 libfuse3-dev fuse-overlayfs
  # libfuse2 file systems that mount themselves (ward-fusermount stands in for fusermount), and
  # mkfs.ext4 for fuse2fs's image (docs/fuse.md, "libfuse2 and daemonizing file systems").
  bindfs fuse-zip fuse2fs e2fsprogs
  mergerfs                           # a libfuse of its own, mounting through its own helper (mergerfs-fusermount)
  gocryptfs                          # go-fuse: runs fusermount with its own environment, uses its own mount after INIT
  rclone                             # bazil's fuse (Go): its own socket at the descriptor WARD_FUSE_FD names; notifications
  ntfs-3g                            # fuse-lite inside: mounts with mount(2), no fusermount (mkntfs for its image)
  libclang-14-dev zlib1g-dev         # `ward gen` reads C headers with libclang; zlib.h: a header its tests have not seen
  fio                                # data verification runs through `ward fuse` (conform_test.cc)
  gnuplot-nox                        # `ward bench ... --plot DIR`: charts (SVG, PNG)
  groff-base                         # the test that renders `ward man` (cli.man)
  dpkg-dev file binutils             # `make deb`: dpkg-shlibdeps computes the Depends (file, readelf: the consumer test)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${#missing[@]} Debian package(s) with apt-get (on a bare machine several minutes): ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then
    sudo=(sudo)
  else
    echo "setup: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
