#!/usr/bin/env bash
# Instructions per event of the hot path's stages, counted by valgrind's callgrind: a figure that
# does not move with the machine's load, for comparing two builds of the decode benchmark when
# their timings differ by less than the noise (±20 % on a shared machine). Fewer instructions is
# not always faster — stores into fresh memory and branch misses cost time without costing
# instructions — so a change is kept on the timings; this says whether it did what it meant to.
#
#   scripts/bench-instructions.sh [EVENTS] [BENCH_BINARY...]
#
# EVENTS (default 10000) are generated as `cargo bench --bench decode` does and each stage is run
# 20 times over them under callgrind, counting only inside the stage's own functions:
#   decode        Decoder::decode
#   decode+Arrow  Decoder::decode and the category/quarantine builders' append and finish
#   parquet       encode_parquet (the benchmark's Parquet stage)
# BENCH_BINARY: decode benchmark binaries to compare (copies of target/release/deps/decode-*);
# none: this tree's, built now. About a minute per binary and stage at 10 000 events.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v valgrind >/dev/null || { echo "bench-instructions.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
events=${1:-10000}
shift || true
bins=("$@")
if [[ ${#bins[@]} -eq 0 ]]; then
  # `cargo bench --no-run` names the binary it built: "Executable benches/decode.rs (target/…)".
  bin=$(cargo bench --bench decode --no-run 2>&1 | sed -n 's/.*Executable benches\/decode.rs (\(.*\))/\1/p' | tail -1)
  [[ -x $bin ]] || { echo "bench-instructions.sh: could not build the decode benchmark" >&2; exit 1; }
  bins=("$bin")
fi
repeats=20 # the benchmark's PROFILE_REPEATS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Instructions counted only inside STAGE's functions in BIN (callgrind's --toggle-collect, with
# exact names: a pattern with `*` matching several functions miscounted), per event.
count() {
  local bin=$1 stage=$2 profile functions=()
  case $stage in
    decode) profile=decode; functions=(pixlake::pix::event::Decoder::decode) ;;
    decode+Arrow)
      profile=full
      functions=(pixlake::pix::event::Decoder::decode)
      for f in CategoryBatchBuilder::append CategoryBatchBuilder::finish QuarantineBatchBuilder::append \
        QuarantineBatchBuilder::finish; do
        functions+=("pixlake::pix::batch::$f")
      done ;;
    parquet) profile=parquet; functions=(decode::encode_parquet) ;;
  esac
  local args=()
  for f in "${functions[@]}"; do args+=("--toggle-collect=$f"); done
  PIXLAKE_BENCH_EVENTS=$events PIXLAKE_BENCH_PROFILE=$profile \
    valgrind --tool=callgrind "${args[@]}" --callgrind-out-file="$tmp/cg" "$bin" --bench >/dev/null 2>"$tmp/log" \
    || { cat "$tmp/log" >&2; exit 1; }
  local total
  total=$(callgrind_annotate "$tmp/cg" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  [[ -n $total && $total -gt 0 ]] || { echo "bench-instructions.sh: nothing counted in $stage of $bin" >&2; exit 1; }
  echo $((total / (events * repeats)))
}

printf '%s events, %s repetitions of each stage; instructions per event (callgrind)\n' "$events" "$repeats"
printf '%-48s %12s %14s %12s\n' binary decode decode+Arrow parquet
for bin in "${bins[@]}"; do
  printf '%-48s %12s %14s %12s\n' "$(basename "$bin")" "$(count "$bin" decode)" "$(count "$bin" decode+Arrow)" \
    "$(count "$bin" parquet)"
done
