#!/usr/bin/env bash
# The ward binary's command line as a user meets it. Usage: cli_test.sh usage|man path/to/ward
#   usage: exit codes (2 for every command line ward does not understand, 0 for --help), the
#          unknown word named with the nearest valid one, and `ward completion bash` in bash.
#   man:   `ward man` renders through groff (and man -l) without a warning. Exit 77 (skipped) when
#          groff is missing.
set -uo pipefail
mode=$1
ward=$2
failures=0
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect CODE PATTERN ARGS...: ward ARGS exits CODE and its stderr+stdout matches PATTERN (grep -E).
expect() {
  local code=$1 pattern=$2
  shift 2
  "$ward" "$@" >"$out/o" 2>&1
  local rc=$?
  [ "$rc" -eq "$code" ] || fail "ward $* exited $rc, expected $code: $(head -3 "$out/o")"
  grep -Eq -- "$pattern" "$out/o" || fail "ward $*: output lacks /$pattern/: $(head -3 "$out/o")"
}

case $mode in
usage)
  expect 2 "^ward: unknown command 'bogus'; its commands are: demo, rio, fuse, gen, bench, man, completion$" bogus
  expect 2 "^ward: unknown command 'bnch'; did you mean 'bench'\?" bnch
  expect 2 "^ward bench: unknown command 'xcp'; did you mean 'xpc'\?" bench xcp
  expect 2 "^ward rio torture: unknown option '--kils'; did you mean '--kills'\?" rio torture --kils 3
  expect 2 "^ward bench xpc: unknown option '--bogus'; its options are: .*--repetitions" bench xpc --bogus
  expect 2 "^ward rio inspect: REGION is required" rio inspect
  expect 2 "^ward bench xpc: Could not convert: --repetitions = x" bench xpc --repetitions x
  expect 2 "^ward: a command is required: demo" 
  expect 2 "^ward bench: a command is required: xpc" bench
  expect 2 "MOUNTPOINT and .* are required" fuse
  expect 0 "Exit codes: 0 success" --help
  expect 0 "--plot DIR" bench xpc --help
  expect 0 "^ward [0-9]" --version
  # A chart that cannot be drawn fails the run after its table (stdout keeps the table).
  quick=(bench events --filter 'events/(direct_call_floor|raise_1_handler)/' --min-time 0.01 --repetitions 1)
  WARD_GNUPLOT=/bin/false "$ward" "${quick[@]}" --plot "$out/charts" >"$out/table" 2>"$out/err"
  rc=$?
  [ "$rc" -eq 1 ] || fail "--plot with a failing gnuplot exited $rc, expected 1: $(cat "$out/err")"
  grep -q "gnuplot .* exited with 1" "$out/err" || fail "--plot: no gnuplot error on stderr: $(cat "$out/err")"
  grep -q "^events/raise_1_handler " "$out/table" || fail "--plot: the table is missing from stdout"
  # The completion script, sourced in bash, completes as the help tree says.
  "$ward" completion bash >"$out/completion" || fail "ward completion bash exited $?"
  complete_to() {  # complete_to EXPECTED WORDS...: the last word is the one being completed
    local want=$1
    shift
    local got
    got=$(bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _ward; echo "${COMPREPLY[*]}"' \
      _ "$out/completion" "$@")
    [ "$got" = "$want" ] || fail "completing '$*' gave '$got', expected '$want'"
  }
  complete_to "bench" ward be
  complete_to "xpc" ward bench x
  complete_to "--repetitions" ward bench xpc --rep
  complete_to "--protection" ward rio torture --prot
  complete_to "inspect recover torture" ward rio ""
  mkdir "$out/plots-here"
  complete_to "$out/plots-here" ward bench xpc --plot "$out/plots"
  ;;
man)
  command -v groff >/dev/null || { echo "skipped: groff is not installed (apt-get install groff-base)"; exit 77; }
  "$ward" man -o "$out/ward.1" || fail "ward man exited $?"
  grep -q '^\.SS "ward bench xpc"' "$out/ward.1" || fail "no section for ward bench xpc"
  warnings=$(groff -man -Tutf8 -ww -z "$out/ward.1" 2>&1)
  [ -z "$warnings" ] || fail "groff warns: $warnings"
  if command -v man >/dev/null; then
    rendered=$(MANWIDTH=100 man -l "$out/ward.1" 2>"$out/err")
    [ -s "$out/err" ] && fail "man -l warns: $(head -5 "$out/err")"
    grep -q -- "--repetitions INT" <<<"$rendered" || fail "the rendered page lacks --repetitions INT"
    grep -q "EXIT STATUS" <<<"$rendered" || fail "the rendered page lacks EXIT STATUS"
  fi
  ;;
*) echo "usage: $0 usage|man path/to/ward" >&2; exit 2 ;;
esac

[ "$failures" -eq 0 ] && echo "OK" || echo "$failures failure(s)"
[ "$failures" -eq 0 ]
