#!/usr/bin/env bash
# Runs pjdfstest (the POSIX file-system suite, github.com/pjd/pjdfstest; not packaged in Debian,
# so it is built by hand: see --help) against four mounts, one after the other:
#   a  a fresh tmpfs: the suite's own baseline
#   b  fuse-overlayfs mounted directly, -o allow_other,default_permissions (the suite switches uids:
#      without allow_other the kernel refuses them every access, and default_permissions makes the
#      kernel check modes, which fuse-overlayfs leaves to it)
#   c  the same fuse-overlayfs through `ward fuse --allow-other --default-permissions`
#   d  c while a killer SIGKILLs the file system process every 0.5-2 s (ward --restarts 100000)
# For each it prints files, tests, passed, failed and the failing tests (file#number), keeps the
# whole verbose TAP log in OUT, and then names every test that fails through ward (c, d) but not
# on the direct mount (b): those are ward's bugs, the rest are fuse-overlayfs's.
# Needs root, /dev/fuse, fuse-overlayfs, prove (perl), timeout. Every mount and process it starts
# is unmounted or killed on exit, failure or signal (trap).
set -u

usage() {
  cat <<'EOF'
Usage: scripts/pjdfstest.sh [--runs abcd] [--ward PATH] [--timeout SEC] [--out DIR] PJDFSTEST_DIR

Runs pjdfstest against (a) tmpfs, (b) fuse-overlayfs mounted directly, (c) fuse-overlayfs
through `ward fuse`, (d) (c) with the file system SIGKILLed every 0.5-2 s, and compares them.

PJDFSTEST_DIR  a built pjdfstest tree (holds the pjdfstest binary and tests/). To build one:
                 fetch github.com/pjd/pjdfstest;  cd it && autoreconf -ifs && ./configure &&
                 make pjdfstest   (needs autoconf automake libtool; not part of setup.sh)
--runs LETTERS which runs, default abcd (d's count is compared with b's like c's)
--ward PATH    the ward binary, default build/ward beside this script's repository
--ward-args A  more options for `ward fuse` in c and d, one word each (e.g. --no-sandbox)
--timeout SEC  the most one test file may take before it is killed (default 300)
--out DIR      where the logs go (default a new /tmp/ward-pjdfstest.XXXXXX; kept)
--help         this text

Output per run: `RUN name: files F, tests T, passed P, failed N` and the failing tests, then
`ward-only: ...` for c and d with the suite's line for each. A test file that ended badly (e.g.
killed by --timeout: timeout(1) exits 124) shows as FILE#wstat-N (prove's wait status).
Exit codes: 0 every run finished and c/d failed no test that b passed; 1 some test failed only
through ward (listed); 2 bad usage or a missing prerequisite; 3 a mount could not be set up.
EOF
}

die() { echo "pjdfstest.sh: $2" >&2; exit "$1"; }

runs=abcd
ward="$(cd "$(dirname "$0")/.." && pwd)/build/ward"
file_timeout=300
ward_args=()
out=
pjd=
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) usage; exit 0 ;;
    --runs) [ $# -ge 2 ] || die 2 "--runs needs a value"; runs=$2; shift 2 ;;
    --ward) [ $# -ge 2 ] || die 2 "--ward needs a value"; ward=$2; shift 2 ;;
    --ward-args) [ $# -ge 2 ] || die 2 "--ward-args needs a value"; read -ra ward_args <<<"$2"; shift 2 ;;
    --timeout) [ $# -ge 2 ] || die 2 "--timeout needs a value"; file_timeout=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die 2 "--out needs a value"; out=$2; shift 2 ;;
    -*) die 2 "unknown option $1 (see --help)" ;;
    *) [ -z "$pjd" ] || die 2 "one PJDFSTEST_DIR only (see --help)"; pjd=$1; shift ;;
  esac
done
[ -n "$pjd" ] || { usage >&2; exit 2; }
case "$runs" in *[!abcd]*|'') die 2 "--runs takes letters among abcd, not '$runs'" ;; esac
case "$file_timeout" in *[!0-9]*|''|0) die 2 "--timeout takes whole seconds > 0" ;; esac
pjd=$(cd "$pjd" 2>/dev/null && pwd) || die 2 "no directory $pjd"
[ -x "$pjd/pjdfstest" ] && [ -d "$pjd/tests" ] || die 2 "$pjd holds no built pjdfstest and tests/ (see --help)"
[ "$(id -u)" = 0 ] || die 2 "must run as root (the suite switches uids and mounts)"
for p in prove timeout mount umount; do command -v "$p" >/dev/null || die 2 "$p is missing"; done
case "$runs" in *[bcd]*)
  command -v fuse-overlayfs >/dev/null || die 2 "fuse-overlayfs is missing (apt-get install fuse-overlayfs)"
  [ -c /dev/fuse ] || die 2 "/dev/fuse is missing" ;;
esac
case "$runs" in *[cd]*) [ -x "$ward" ] || die 2 "no ward binary at $ward (build ward-cli, or --ward)" ;; esac
[ -n "$out" ] || out=$(mktemp -d /tmp/ward-pjdfstest.XXXXXX) || die 2 "cannot create a log directory"
mkdir -p "$out" || die 2 "cannot create $out"

# What the trap must undo: mount points (lazily unmounted) and pids (SIGKILLed), in this order.
mounts=()
pids=()
base=
cleanup() {
  local m p i
  for m in "${mounts[@]}"; do mountpoint -q "$m" && umount -l "$m"; done
  # Unmounted, ward and fuse-overlayfs end by themselves; whatever is left after 5 s is killed.
  for i in $(seq 50); do
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && break; p=; done
    [ -z "${p:-}" ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  pids=() mounts=()
  [ -n "$base" ] && rm -rf "$base"
  base=
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits up to 10 s for $1 to become a mount point; fails otherwise.
wait_mounted() {

  for _ in $(seq 100); do mountpoint -q "$1" && return 0; sleep 0.1; done
  return 1
}

# Runs the suite in $1; the verbose TAP goes to $out/$2.log. prove runs each test file under
# timeout(1) so that one hung file costs --timeout, not the run.
suite() {
  (cd "$1" && prove -r -v -e "timeout -k 10 $file_timeout sh" "$pjd/tests") >"$out/$2.log" 2>&1
}

# Turns $out/$1.log into $out/$1.failed (sorted; one FILE#N per failing test, FILE relative to
# tests/, TODO tests do not count; FILE#wstat-N for a file that ended badly, e.g. killed by
# --timeout: timeout(1) exits 124, so wstat-31744) and prints the run's line.
summarize() {
  local log="$out/$1.log" files tests failed
  awk -v root="$pjd/tests/" '
    index($0, root) == 1 && / \.+ *$/ { f = substr($1, length(root) + 1); next }
    /^not ok [0-9]+/ && !/# TODO/ { print f "#" $3 }
    index($1, root) == 1 && $2 == "(Wstat:" && $3 != "0" { print substr($1, length(root) + 1) "#wstat-" $3 }
  ' "$log" | sort -u >"$out/$1.failed"
  files=$(sed -n 's/^Files=\([0-9]*\), Tests=\([0-9]*\).*/\1/p' "$log")
  tests=$(sed -n 's/^Files=\([0-9]*\), Tests=\([0-9]*\).*/\2/p' "$log")
  failed=$(grep -vc '#wstat-' "$out/$1.failed")
  echo "RUN $1: files ${files:-?}, tests ${tests:-?}, passed $(( ${tests:-0} - failed )), failed $failed"
  # A long list goes to the file only: a sandbox refusal can fail a thousand tests.
  [ -s "$out/$1.failed" ] && head -n 40 "$out/$1.failed" | paste -sd' ' | fold -s -w 100 | sed 's/^/  /'
  [ "$(wc -l <"$out/$1.failed")" -le 40 ] || echo "  ... all $(wc -l <"$out/$1.failed") in $out/$1.failed"
}

newbase() {
  base=$(mktemp -d /tmp/ward-pjd-mnt.XXXXXX) || exit 3
  chmod 755 "$base"  # uid 65534 works in the mount and must reach it
  mkdir "$base"/{L,U,W,M}
}

overlay_opts() { echo "lowerdir=$base/L,upperdir=$base/U,workdir=$base/W"; }

run_a() {
  newbase
  mount -t tmpfs ward-pjdfstest "$base/M" || die 3 "cannot mount a tmpfs"
  mounts+=("$base/M")
  suite "$base/M" a-tmpfs
  cleanup
  summarize a-tmpfs
}

run_b() {
  newbase
  fuse-overlayfs -f -o "$(overlay_opts),allow_other,default_permissions" "$base/M" \
    >"$out/b-fuse-overlayfs.fs.log" 2>&1 &
  pids+=($!)
  mounts+=("$base/M")
  wait_mounted "$base/M" || die 3 "fuse-overlayfs did not mount (see $out/b-fuse-overlayfs.fs.log)"
  suite "$base/M" b-fuse-overlayfs
  cleanup
  summarize b-fuse-overlayfs
}

# Mounts through ward; sets ward_pid.
ward_mount() {
  mounts+=("$base/M")
  "$ward" fuse --allow-other --default-permissions --restarts 100000 --log "$out/$1.ward.log" "${ward_args[@]}" \
    "$base/M" -- fuse-overlayfs -f -o "$(overlay_opts)" {} || die 3 "ward fuse did not mount (see $out/$1.ward.log)"
  ward_pid=$("$ward" fuse status "$base/M" | awk '$1 == "ward_pid:" { print $2 }')
  [ -n "$ward_pid" ] || die 3 "ward fuse status names no ward_pid"
  pids+=("$ward_pid")
}

# SIGKILLs the file system serving $1 every 0.5-2 s; one line per kill in $2.
killer() {
  local fs
  while :; do
    sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.3f", 0.5 + 1.5 * rand() }')"
    fs=$("$ward" fuse status "$1" 2>/dev/null | awk '$1 == "fs_pid:" { print $2 }')
    [ -n "$fs" ] && kill -9 "$fs" 2>/dev/null && echo "$(date +%T.%N) $fs" >>"$2"
  done
}

run_c() {
  newbase
  ward_mount c-ward
  suite "$base/M" c-ward
  "$ward" fuse status "$base/M" >"$out/c-ward.status" 2>&1
  cleanup
  summarize c-ward
}

run_d() {
  newbase
  ward_mount d-ward-kills
  : >"$out/d-ward-kills.kills"
  killer "$base/M" "$out/d-ward-kills.kills" &
  local killer_pid=$!
  pids+=("$killer_pid")
  suite "$base/M" d-ward-kills
  kill -9 "$killer_pid" 2>/dev/null
  "$ward" fuse status "$base/M" >"$out/d-ward-kills.status" 2>&1
  cleanup
  summarize d-ward-kills
  echo "  SIGKILLs: $(wc -l <"$out/d-ward-kills.kills");" \
    "$(grep -E '^(restarts|reissued|refused|stale_nodes):' "$out/d-ward-kills.status" | paste -sd' ')"
  echo "  tests that saw EIO or ENOTCONN: $(grep -cE '^not ok .*got (EIO|ENOTCONN)' "$out/d-ward-kills.log")"
}

echo "pjdfstest $(git -C "$pjd" rev-parse --short HEAD 2>/dev/null || echo '(not a git tree)'), logs in $out"
status=0
for r in a b c d; do
  case "$runs" in *$r*) "run_$r" ;; esac
done
for r in c-ward d-ward-kills; do
  [ -f "$out/$r.failed" ] && [ -f "$out/b-fuse-overlayfs.failed" ] || continue
  only=$(comm -23 "$out/$r.failed" "$out/b-fuse-overlayfs.failed")
  if [ -n "$only" ]; then
    status=1
    echo "ward-only in $r: $(echo "$only" | wc -l) tests (in $out/$r.ward-only); the first 40:"
    echo "$only" >"$out/$r.ward-only"
    # Each with the suite's own line: what it tried, what it expected, what it got.
    echo "$only" | head -n 40 | while IFS='#' read -r f n; do
      awk -v root="$pjd/tests/" -v f="$f" -v n="$n" '
        index($0, root) == 1 && / \.+ *$/ { on = (substr($1, length(root) + 1) == f); next }
        on && $1 == "not" && $3 == n { print "  " f ": " substr($0, 1, 300) }' "$out/$r.log"
    done
  else
    echo "ward-only in $r: none"
  fi
done
exit "$status"
