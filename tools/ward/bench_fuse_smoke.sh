#!/bin/sh
# ctest bench_fuse.smoke: `ward bench fuse --quick` exits 0 and prints every row for every
# target (the relay model's rows for direct and ward, the ideal relay's for lookup and read),
# and leaves nothing behind (no mount, no directory); interrupted by SIGINT mid-run it
# exits 130 and leaves nothing behind either. Usage: bench_fuse_smoke.sh path/to/ward
# Exit 77 (ctest: skipped) without root, /dev/fuse or fuse-overlayfs.
ward=$1
if [ "$(id -u)" != 0 ] || [ ! -w /dev/fuse ]; then echo "skipped: needs root and /dev/fuse"; exit 77; fi
if ! command -v fuse-overlayfs >/dev/null; then echo "skipped: fuse-overlayfs is not installed (scripts/setup.sh)"; exit 77; fi

parent=$(mktemp -d /tmp/ward-bench-fuse-smoke-XXXXXX) || exit 1
pid=
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  grep -o "$parent[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$parent"
}
trap cleanup EXIT
status=0
left_behind() {  # $1: what ran
  if grep -q "$parent" /proc/mounts; then echo "FAIL: $1 left a mount:"; grep "$parent" /proc/mounts; status=1; fi
  if [ -n "$(ls -A "$parent"/dir)" ]; then echo "FAIL: $1 left files:"; ls -A "$parent"/dir; status=1; fi
}
mkdir "$parent"/dir

"$ward" bench fuse --quick --repetitions 1 --compare-max-read 65536 --dir "$parent"/dir >"$parent"/out 2>"$parent"/err
rc=$?
if [ $rc != 0 ]; then echo "FAIL: exit $rc"; cat "$parent"/err; status=1; fi
for row in write read read_cold create stat unlink lookup; do
  for t in floor direct direct_maxread ward; do
    if ! grep -q "^$t/$row " "$parent"/out; then echo "FAIL: no row $t/$row"; status=1; fi
  done
  # progress: one line per row on stderr
  if ! grep -q "\] $row: " "$parent"/err; then echo "FAIL: no progress line for $row"; status=1; fi
done
# restart rows: ward only
for row in restart restart_max; do
  if ! grep -q "^ward/$row " "$parent"/out; then echo "FAIL: no row ward/$row"; status=1; fi
  if grep -q "^direct/$row " "$parent"/out; then echo "FAIL: a direct mount cannot restart: direct/$row"; status=1; fi
done
# the relay model: one hop (direct) and two (ward), no floor; the ideal relay beside ward
for row in hop_small hop_read; do
  for t in direct ward; do
    if ! grep -q "^$t/$row " "$parent"/out; then echo "FAIL: no row $t/$row"; status=1; fi
  done
  if grep -q "^floor/$row " "$parent"/out; then echo "FAIL: the model has no floor: floor/$row"; status=1; fi
done
for row in lookup read; do
  if ! grep -q "^ideal/$row .* direct/$row " "$parent"/out; then echo "FAIL: no row ideal/$row"; status=1; fi
  if ! grep -q "^ward/$row .* ideal/$row " "$parent"/out; then echo "FAIL: no row ward/$row against ideal/$row"; status=1; fi
done
[ $status = 0 ] || cat "$parent"/out
left_behind "a run"

# Interrupted once the rows have started (large sizes: still running when the signal comes).
"$ward" bench fuse --size-mb 2048 --files 200000 --dir "$parent"/dir >/dev/null 2>"$parent"/err2 &
pid=$!
i=0
while ! grep -q "\[1/" "$parent"/err2 && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
kill -INT "$pid"
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$pid" 2>/dev/null; then echo "FAIL: still running 30 s after SIGINT"; status=1; kill -KILL "$pid"; fi
wait "$pid"
rc=$?
pid=
if [ $rc != 130 ]; then echo "FAIL: interrupted run exited $rc, not 130"; cat "$parent"/err2; status=1; fi
left_behind "an interrupted run"
[ $status = 0 ] && echo "ok"
exit $status
