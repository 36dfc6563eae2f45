#!/usr/bin/env bash
# Instructions per event of the hot path's stages, counted by valgrind's callgrind: a figure that
# does not move with the machine's load, for comparing two builds of the decode benchmark when
# their timings differ by less than the noise (±20 % on a shared machine). Fewer instructions is
# not always less time — stores into fresh memory and branch misses cost time without costing
# instructions — so this says whether a change did what it meant to, not that it is faster.
#
#   scripts/bench-instructions.sh [EVENTS [BENCH_BINARY...]]
#
# EVENTS (default 10000) are generated as `cargo bench --bench decode` does, and each stage runs
# 20 times over them under callgrind, counted only inside the benchmark's function for it (with
# everything it calls, drops of the decoded events and batches included):
#   decode        decode_all: Decoder::decode of every record
#   decode+Arrow  build_batches: decode, append to the category/quarantine builders, finish
#   parquet       encode_parquet: the Parquet stage
# BENCH_BINARY: decode benchmark binaries to compare, copies of target/release/deps/decode-*
# built from a tree that has these three functions (the benchmark of 2026-12-03 or later); to
# measure an older library, build it with today's benchmark:
#   git stash push src/ && cargo bench --bench decode --no-run && cp target/release/deps/decode-<hash> /tmp/before
#   git stash pop
# None given: this tree's, built now. About a minute per binary and stage at 10 000 events.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
die() { echo "bench-instructions.sh: $*" >&2; exit 1; }
command -v valgrind >/dev/null || die "needs valgrind (apt-get install valgrind)"
events=${1:-10000}
[[ $events =~ ^[1-9][0-9]*$ ]] || die "EVENTS must be a number of events, not '$events' (usage: [EVENTS [BENCH_BINARY...]])"
shift || true
bins=("$@")
if [[ ${#bins[@]} -eq 0 ]]; then
  # `cargo bench --no-run` names the binary it built: "Executable benches/decode.rs (target/…)".
  out=$(cargo bench --locked --color never --bench decode --no-run 2>&1) || { printf '%s\n' "$out" >&2; die "the decode benchmark does not build"; }
  bin=$(printf '%s\n' "$out" | sed -n 's/.*Executable benches\/decode.rs (\(.*\))/\1/p' | tail -1)
  [[ -x $bin ]] || die "cargo did not name the decode benchmark's binary"
  bins=("$bin")
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Instructions counted inside STAGE's function of BIN, per event.
count() {
  local bin=$1 stage=$2 profile function
  case $stage in
    decode) profile=decode function=decode::decode_all ;;
    decode+Arrow) profile=full function=decode::build_batches ;;
    parquet) profile=parquet function=decode::encode_parquet ;;
  esac
  PIXLAKE_BENCH_EVENTS=$events PIXLAKE_BENCH_PROFILE=$profile \
    valgrind --tool=callgrind "--toggle-collect=$function" --callgrind-out-file="$tmp/cg" "$bin" --bench \
    >"$tmp/out" 2>"$tmp/log" || { cat "$tmp/log" >&2; die "$bin failed under valgrind"; }
  # The benchmark says what it ran: "profile full: 10000 events, 20 repetitions".
  local ran total
  ran=$(sed -n 's/^profile [a-z]*: \([0-9]*\) events, \([0-9]*\) repetitions$/\1 * \2/p' "$tmp/out")
  [[ -n $ran ]] || die "$bin did not say what it ran (a benchmark from before 2026-12-03?)"
  total=$(callgrind_annotate "$tmp/cg" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  [[ -n $total && $total -gt 0 ]] || die "nothing counted in $function of $bin (renamed, or inlined?)"
  echo $((total / (ran)))
}

printf '%s events, instructions per event (callgrind)\n' "$events"
printf '%-48s %12s %14s %12s\n' binary decode decode+Arrow parquet
for bin in "${bins[@]}"; do
  # One at a time, so that a failure stops the script (set -e does not reach into `printf $(…)`).
  d=$(count "$bin" decode)
  a=$(count "$bin" decode+Arrow)
  p=$(count "$bin" parquet)
  printf '%-48s %12s %14s %12s\n' "$(basename "$bin")" "$d" "$a" "$p"
done
