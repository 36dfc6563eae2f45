#!/usr/bin/env bash
# What an S3 warehouse costs, measured on this machine against the local store of
# scripts/s3.sh (moto, on 127.0.0.1) — an S3 stand-in with loopback latency, so the figures show
# request counts and per-commit work rather than a real network's round trips.
#
#   1. commit cost: EVENTS pre-produced events (2 % invalid) ingested with `--until-caught-up`
#      into a local warehouse (the baseline) and into an s3:// one, same batches: events/s,
#      Delta commits and the mean time per commit (from the run's --json report);
#   2. per-commit work over the table's history: one long S3 run in small batches, the mean
#      commit time per window of table versions (sampled from /metrics): flat when a commit's
#      work does not grow with the log;
#   3. instances: 1, 2 and 3 `ingest --until-caught-up` processes in the same groups on S3
#      (each its own instance id), wall time to the end of the topics, events/s.
#
#   scripts/bench-s3.sh [EVENTS]     (default 200000)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
events=${1:-200000}
batch=${PIXLAKE_BENCH_BATCH:-5000}
for tool in bc curl; do
  command -v $tool >/dev/null || { echo "bench-s3.sh: needs $tool (apt-get install $tool)" >&2; exit 1; }
done
scripts/kafka.sh start >/dev/null
scripts/s3.sh start >/dev/null
cargo build --release --locked -q
bin=$PWD/target/release/pixlake
run="bench-s3-$(date +%s)"
work=$(mktemp -d)
trap 'rm -rf "$work"; scripts/kafka.sh delete "$run.payments" "$run.receipts" "$run.refunds" "$run.dlq" >/dev/null 2>&1 || true' EXIT
export PIXLAKE__DLQ__TOPIC="$run.dlq" PIXLAKE__TELEMETRY__LISTEN=127.0.0.1:0
PIXLAKE_KAFKA_TOPICS="$run.payments $run.receipts $run.refunds" PIXLAKE_KAFKA_DLQ="$run.dlq" \
  scripts/kafka.sh topics >/dev/null
for i in 0 1 2; do
  t=$(echo payments receipts refunds | cut -d' ' -f$((i + 1)))
  export "PIXLAKE__PIPELINES__${i}__TOPIC=$run.$t"
done
echo "== producing $events events to $run.* (not timed)"
$bin produce --count "$events" --invalid-ratio 0.02 --seed 9 2>&1 | tail -1

# The groups of one measured run (every run reads the topics from the start).
groups() {
  for i in 0 1 2; do
    t=$(echo payments receipts refunds | cut -d' ' -f$((i + 1)))
    echo "PIXLAKE__PIPELINES__${i}__GROUP=$run-$1-$t"
  done
}
s3_env() {
  eval "$(scripts/s3.sh env)"
  export PIXLAKE__WAREHOUSE__ROOT="s3://pixlake/$run-$1"
}
# Sum of a field over the pipelines of a --json report.
sum() { python3 -c "import json,sys; print(sum(p['$1'] for p in json.load(open(sys.argv[1]))['pipelines']))" "$2"; }

echo "== 1. commit cost: local warehouse vs S3, batches of $batch rows"
printf '%-14s %10s %10s %12s %12s\n' warehouse "events/s" commits "commit ms" "elapsed s"
for target in local s3; do
  (
    if [[ $target == s3 ]]; then s3_env commit; else export PIXLAKE__WAREHOUSE__ROOT="$work/warehouse"; fi
    start=$(date +%s.%N)
    env $(groups "commit-$target") PIXLAKE__BATCH__MAX_ROWS="$batch" \
      $bin ingest --until-caught-up --json >"$work/$target.json" 2>"$work/$target.log"
    s=$(echo "$(date +%s.%N) - $start" | bc)
    commits=$(sum commits "$work/$target.json")
    secs=$(sum commit_seconds "$work/$target.json")
    printf '%-14s %10.0f %10d %12.1f %12.1f\n' "$target" "$(echo "$events / $s" | bc -l)" "$commits" \
      "$(echo "$secs * 1000 / $commits" | bc -l)" "$s"
  )
done

echo "== 2. per-commit work as the S3 table grows (batches of 500 rows, pix_payments)"
(
  s3_env history
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  env $(groups history) PIXLAKE__BATCH__MAX_ROWS=500 PIXLAKE__TELEMETRY__LISTEN="127.0.0.1:$port" \
    $bin ingest --until-caught-up --json >"$work/history.json" 2>"$work/history.log" &
  pid=$!
  printf '%-20s %10s %12s\n' "table versions" commits "commit ms"
  last_sum=0 last_count=0 last_version=0
  while kill -0 $pid 2>/dev/null; do
    sleep 5
    m=$(curl -s "http://127.0.0.1:$port/metrics" || true)
    read -r sum count version < <(echo "$m" | awk '
      /^pixlake_commit_duration_seconds_sum\{.*table="pix_payments"/ {s=$2}
      /^pixlake_commit_duration_seconds_count\{.*table="pix_payments"/ {c=$2}
      /^pixlake_delta_table_version\{.*table="pix_payments"/ {v=$2}
      END {print s+0, c+0, v+0}')
    if [[ ${count%.*} -gt $last_count ]]; then
      n=$(( ${count%.*} - last_count ))
      printf '%-20s %10d %12.1f\n' "$last_version..${version%.*}" "$n" "$(echo "($sum - $last_sum) * 1000 / $n" | bc -l)"
      last_sum=$sum last_count=${count%.*} last_version=${version%.*}
    fi
  done
  wait $pid
)

echo "== 3. instances in the same groups, S3 warehouse"
printf '%-10s %10s %12s\n' instances "events/s" "elapsed s"
for k in 1 2 3; do
  (
    s3_env "instances-$k"
    start=$(date +%s.%N)
    pids=()
    for i in $(seq 1 "$k"); do
      env $(groups "instances-$k") PIXLAKE__INGEST__INSTANCE_ID="bench-$i" PIXLAKE__BATCH__MAX_ROWS="$batch" \
        $bin ingest --until-caught-up >/dev/null 2>"$work/instances-$k-$i.log" &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    s=$(echo "$(date +%s.%N) - $start" | bc)
    printf '%-10s %10.0f %12.1f\n' "$k" "$(echo "$events / $s" | bc -l)" "$s"
  )
done
