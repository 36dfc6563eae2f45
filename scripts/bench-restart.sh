#!/usr/bin/env bash
# Restart benchmark: seconds from restarting `pixlake ingest` after `kill -9` to its first Delta
# commit of every pipeline, with pixlake's default session settings (session.timeout.ms 45 s),
# while a producer keeps publishing. In the same run:
#   1. baseline: dynamic membership (ingest.static_membership: false), what pixlake did before;
#   2. static membership (the default): the restarted instance takes the dead one's place.
#
#   scripts/bench-restart.sh [ROUNDS]     (default 3; about a minute per round)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-3}
scripts/kafka.sh start >/dev/null
cargo build --release --locked -q
bin=$PWD/target/release/pixlake
work=$(mktemp -d)
topics=()
pids=()
cleanup() {
  ((${#pids[@]})) && kill -9 "${pids[@]}" 2>/dev/null || true
  rm -rf "$work"
  ((${#topics[@]})) && scripts/kafka.sh delete "${topics[@]}" >/dev/null 2>&1 || true
}
trap cleanup EXIT
export PIXLAKE__TELEMETRY__LISTEN=127.0.0.1:0 PIXLAKE__INGEST__INSTANCE_ID=bench-restart

# Seconds from `start` (ns) to the latest of the first lines of `log` matching `what` (a grep
# pattern with %s for the pipeline), one per pipeline, by the lines' own timestamps; waits up
# to 180 s for all three.
seconds_until() {
  local what=$1 log=$2 start=$3
  local deadline=$(($(date +%s%N) + 180000000000))
  while (($(date +%s%N) < deadline)); do
    local latest=0 n=0 line ts
    for p in payments receipts refunds; do
      # shellcheck disable=SC2059
      line=$(grep -m1 "$(printf "$what" "$p")" "$log" || true)
      [[ -z $line ]] && continue
      ts=$(date -d "${line%% *}" +%s%N)
      n=$((n + 1))
      ((ts > latest)) && latest=$ts
    done
    if ((n == 3)); then
      printf '%.1f\n' "$(echo "($latest - $start) / 1000000000" | bc -l)"
      return
    fi
    sleep 0.2
  done
  echo "timeout"
}

first_commits() { seconds_until 'committed batch pipeline="%s"' "$@"; }
assigned() { seconds_until 'pipeline=%s group=.* assigned=\[(' "$@"; }

declare -A results assignments
for r in $(seq 1 "$rounds"); do
  for mode in dynamic static; do
    run="bench-restart-$mode-$r-$(date +%s)"
    topics+=("$run.payments" "$run.receipts" "$run.refunds" "$run.dlq")
    PIXLAKE_KAFKA_TOPICS="$run.payments $run.receipts $run.refunds" PIXLAKE_KAFKA_DLQ="$run.dlq" \
      scripts/kafka.sh topics >/dev/null
    export PIXLAKE__WAREHOUSE__ROOT="$work/$run" PIXLAKE__DLQ__TOPIC="$run.dlq"
    for i in 0 1 2; do
      t=$(echo payments receipts refunds | cut -d' ' -f$((i + 1)))
      export "PIXLAKE__PIPELINES__${i}__TOPIC=$run.$t" "PIXLAKE__PIPELINES__${i}__GROUP=$run-$t"
    done
    [[ $mode == dynamic ]] && static=false || static=true
    export PIXLAKE__INGEST__STATIC_MEMBERSHIP=$static
    $bin produce --rate 3000 --seed "$r" >/dev/null 2>"$work/$run.produce" &
    producer=$!
    $bin ingest >/dev/null 2>"$work/$run.first" &
    first=$!
    pids+=("$producer" "$first")
    first_commits "$work/$run.first" "$(date +%s%N)" >/dev/null
    kill -9 "$first"
    wait "$first" 2>/dev/null || true
    start=$(date +%s%N)
    $bin ingest >/dev/null 2>"$work/$run.second" &
    second=$!
    pids+=("$second")
    secs=$(first_commits "$work/$run.second" "$start")
    got=$(assigned "$work/$run.second" "$start")
    kill -TERM "$second"
    wait "$second" 2>/dev/null || true
    kill "$producer"
    wait "$producer" 2>/dev/null || true
    echo "round $r, $mode membership: partitions of every pipeline assigned ${got} s, first commit of every pipeline ${secs} s after the restart"
    results[$mode]+="$secs "
    assignments[$mode]+="$got "
  done
done
printf '\n%-30s %-30s %s\n' "membership (kill -9, restart)" "s to assignment, per round" "s to first commit, per round"
printf '%-30s %-30s %s\n' "dynamic (baseline, before)" "${assignments[dynamic]}" "${results[dynamic]}"
printf '%-30s %-30s %s\n' "static (default, after)" "${assignments[static]}" "${results[static]}"
echo "(the first commit follows the assignment by up to batch.max_latency_ms, 5 s by default)"
