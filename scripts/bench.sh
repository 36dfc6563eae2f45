#!/usr/bin/env bash
# pixlake's throughput, memory and freshness against the ceiling of this machine, in one run on
# fresh topics (release builds, the broker of scripts/kafka.sh beside them):
#
#   1. ceiling: a no-op consumer built from this crate (examples/noop_consume.rs: ingest's own
#      consumer settings, one thread per pipeline, the three topics read concurrently), and
#      three concurrent `kcat -C` for reference;
#   2. `pixlake ingest --until-caught-up` over EVENTS pre-produced events (1 % invalid), with the
#      defaults (ingest.memory_limit_mb 512) and without a memory limit: events/s, MB/s, CPU
#      seconds per million events, peak RSS, Parquet files and bytes, Delta commits, the most
#      data files one commit added to one table partition, and the ratio to the ceiling;
#   3. freshness under steady load: `pixlake produce --rate RATE` for SECONDS while ingest runs
#      with the default settings; p50/p99/max from each record's Kafka timestamp to the Delta
#      commit that made its row visible (examples/freshness.rs);
#   4. with BENCH_SCALING=1: ingest over SCALING_EVENTS events on topics of 6, 18 and 60
#      partitions, with 1, 2 and 4 runtime worker threads (ingest.worker_threads).
#
#   scripts/bench.sh [EVENTS]        (default 2000000)
#   BENCH_RATE=10000 BENCH_SECONDS=60 BENCH_SCALING=0 SCALING_EVENTS=500000
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
events=${1:-2000000}
rate=${BENCH_RATE:-10000}
seconds=${BENCH_SECONDS:-60}
scaling=${BENCH_SCALING:-0}
scaling_events=${SCALING_EVENTS:-500000}
for tool in kcat bc python3 /usr/bin/time; do
  command -v $tool >/dev/null || { echo "bench.sh: needs $tool (scripts/setup.sh installs kcat; apt-get install bc time)" >&2; exit 1; }
done
scripts/kafka.sh start >/dev/null
cargo build --release --locked -q --bin pixlake --example noop_consume --example freshness
bin=$PWD/target/release/pixlake
examples=$PWD/target/release/examples
work=$(mktemp -d)
made=()
ingest_pid=
trap '[[ -n $ingest_pid ]] && kill "$ingest_pid" 2>/dev/null; rm -rf "$work"; scripts/kafka.sh delete "${made[@]}" >/dev/null 2>&1 || true' EXIT
export PIXLAKE__TELEMETRY__LISTEN=127.0.0.1:0

# setup RUN PARTITIONS: fresh topics RUN.{payments,receipts,refunds,dlq} and a fresh warehouse;
# the pipelines of the default configuration pointed at them.
setup() {
  local run=$1 partitions=$2 i t
  made+=("$run.payments" "$run.receipts" "$run.refunds" "$run.dlq")
  PIXLAKE_KAFKA_PARTITIONS=$partitions PIXLAKE_KAFKA_TOPICS="$run.payments $run.receipts $run.refunds" \
    PIXLAKE_KAFKA_DLQ="$run.dlq" scripts/kafka.sh topics >/dev/null
  export PIXLAKE__WAREHOUSE__ROOT="$work/$run" PIXLAKE__DLQ__TOPIC="$run.dlq"
  i=0
  for t in payments receipts refunds; do
    export "PIXLAKE__PIPELINES__${i}__TOPIC=$run.$t" "PIXLAKE__PIPELINES__${i}__GROUP=$run-$t"
    i=$((i + 1))
  done
}

# timed OUT CMD…: runs CMD with /usr/bin/time; OUT gets "wall user sys maxrss_kib".
timed() {
  local out=$1
  shift
  /usr/bin/time -f '%e %U %S %M' -o "$out" "$@"
}
field() { awk -v n="$2" '{print $n}' "$1"; }
json() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
commits() { find "$1" -path '*/_delta_log/*.json' -name '0*.json' ! -name '00000000000000000000.json' | wc -l; }
# The most data files one Delta commit under DIR added to one partition of its table.
files_per_partition() {
  python3 - "$1" <<'PY'
import collections, glob, json, os, re, sys
most = 0
for log in glob.glob(sys.argv[1] + "/**/_delta_log/*.json", recursive=True):
    if not re.fullmatch(r"[0-9]{20}\.json", os.path.basename(log)):
        continue  # a commit is NNNNNNNNNNNNNNNNNNNN.json; checkpoints and compacted logs are not
    adds = collections.Counter()
    with open(log) as f:
        for line in f:
            add = json.loads(line).get("add")
            if add:
                adds[json.dumps(add.get("partitionValues"), sort_keys=True)] += 1
    most = max([most, *adds.values()])
print(most)
PY
}

run="bench-$(date +%s)"
setup "$run" 6
echo "== producing $events events (1 % invalid) to $run.* (not timed)"
$bin produce --count "$events" --invalid-ratio 0.01 --seed 5 2>&1 | tail -1

echo "== ceiling: no-op consumer (ingest's consumer settings, the three topics concurrently)"
timed "$work/noop.time" "$examples/noop_consume" > "$work/noop.json"
noop_s=$(json "$work/noop.json" seconds)
noop_events=$(json "$work/noop.json" events)
mb=$(echo "scale=1; $(json "$work/noop.json" bytes) / 1048576" | bc)
[[ $noop_events -eq $events ]] || echo "bench.sh: the no-op consumer read $noop_events of $events events" >&2

echo "== reference: three kcat -C, concurrently"
start=$(date +%s.%N)
pids=()
for t in payments receipts refunds; do
  kcat -b 127.0.0.1:9092 -C -t "$run.$t" -o beginning -e -q -f '%S\n' > /dev/null &
  pids+=($!)
done
for p in "${pids[@]}"; do
  wait "$p" || { echo "bench.sh: kcat failed; its figure would be wrong" >&2; exit 1; }
done
kcat_s=$(echo "$(date +%s.%N) - $start" | bc)

echo "== pixlake ingest --until-caught-up, without a memory limit (ingest.memory_limit_mb: 0)"
PIXLAKE__WAREHOUSE__ROOT="$work/$run-unlimited" PIXLAKE__INGEST__MEMORY_LIMIT_MB=0 \
  timed "$work/unlimited.time" $bin ingest --until-caught-up > /dev/null 2> "$work/unlimited.log"
unlimited_s=$(field "$work/unlimited.time" 1)
unlimited_cpu_s=$(echo "$(field "$work/unlimited.time" 2) + $(field "$work/unlimited.time" 3)" | bc)
unlimited_rss_mib=$(( $(field "$work/unlimited.time" 4) / 1024 ))

echo "== pixlake ingest --until-caught-up (defaults: ingest.memory_limit_mb 512)"
timed "$work/ingest.time" $bin ingest --until-caught-up > "$work/summary" 2> "$work/log"
ingest_s=$(field "$work/ingest.time" 1)
cpu_s=$(echo "$(field "$work/ingest.time" 2) + $(field "$work/ingest.time" 3)" | bc)
rss_mib=$(( $(field "$work/ingest.time" 4) / 1024 ))
files=$(find "$work/$run" -name '*.parquet' ! -name '*checkpoint*' | wc -l)
parquet_mb=$(find "$work/$run" -name '*.parquet' ! -name '*checkpoint*' -printf '%s\n' | awk '{s+=$1} END {printf "%.0f", s/1048576}')
ncommits=$(commits "$work/$run")
per_partition=$(files_per_partition "$work/$run")

rate_of() { echo "$events / $1" | bc -l; }
printf '\n%-40s %10s %8s\n' "$events events, $mb MB of values" "events/s" "MB/s"
printf '%-40s %10.0f %8.1f\n' "ceiling: no-op consumer" "$(rate_of "$noop_s")" "$(echo "$mb / $noop_s" | bc -l)"
printf '%-40s %10.0f %8.1f\n' "reference: 3 × kcat -C" "$(rate_of "$kcat_s")" "$(echo "$mb / $kcat_s" | bc -l)"
printf '%-40s %10.0f %8.1f\n' "pixlake ingest --until-caught-up" "$(rate_of "$ingest_s")" "$(echo "$mb / $ingest_s" | bc -l)"
printf '%-40s %10.0f %8.1f\n' "  the same, memory_limit_mb: 0" "$(rate_of "$unlimited_s")" "$(echo "$mb / $unlimited_s" | bc -l)"
printf 'pixlake / ceiling: %.2f   pixlake / kcat: %.2f   (no memory limit: %.2f, %.2f)\n' \
  "$(echo "$noop_s / $ingest_s" | bc -l)" "$(echo "$kcat_s / $ingest_s" | bc -l)" \
  "$(echo "$noop_s / $unlimited_s" | bc -l)" "$(echo "$kcat_s / $unlimited_s" | bc -l)"
printf 'CPU: %.1f s per million events (user+sys); peak RSS: %d MiB   (no memory limit: %.1f s, %d MiB)\n' \
  "$(echo "$cpu_s * 1000000 / $events" | bc -l)" "$rss_mib" \
  "$(echo "$unlimited_cpu_s * 1000000 / $events" | bc -l)" "$unlimited_rss_mib"
echo "output: $files Parquet files, $parquet_mb MiB; $ncommits Delta commits (all tables); at most $per_partition data file(s) per table partition in one commit"

echo
echo "== freshness: produce --rate $rate for $seconds s while ingest runs with the defaults"
fresh="$run-fresh"
setup "$fresh" 6
$bin ingest > "$work/fresh.log" 2>&1 &
ingest_pid=$!
# Ready when its pipelines have their partitions (the first assignment reads Delta).
for i in $(seq 1 300); do
  grep -q 'partitions assigned' "$work/fresh.log" 2>/dev/null && break
  [[ $i == 300 ]] && { echo "bench.sh: ingest has no partitions after 30 s; see its log:" >&2; tail -5 "$work/fresh.log" >&2; exit 1; }
  sleep 0.1
done
$bin produce --rate "$rate" --count $((rate * seconds)) --invalid-ratio 0.01 --seed 7 2>&1 | tail -1
# What was produced last is committed by the latency rule, not by the stop.
latency_ms=$($bin config show 2>/dev/null | awk '/^  max_latency_ms:/ {print $2}')
[[ $latency_ms =~ ^[0-9]+$ ]] || { echo "bench.sh: cannot read batch.max_latency_ms from 'pixlake config show'" >&2; exit 1; }
sleep $(( latency_ms / 1000 + 3 ))
kill -TERM "$ingest_pid"
wait "$ingest_pid" || true
ingest_pid=
"$examples/freshness" "$work/$fresh" pix_payments pix_receipts pix_refunds > "$work/fresh.json"
printf 'rows %s; from Kafka timestamp to visible in Delta: p50 %s s, p99 %s s, max %s s (batch.max_latency_ms %s)\n' \
  "$(json "$work/fresh.json" rows)" "$(json "$work/fresh.json" p50)" "$(json "$work/fresh.json" p99)" \
  "$(json "$work/fresh.json" max)" "$latency_ms"

if [[ $scaling == 1 ]]; then
  echo
  echo "== scaling: ingest --until-caught-up over $scaling_events events"
  printf '%-12s %-8s %10s %10s %9s\n' partitions workers events/s "CPU s/M" "RSS MiB"
  for partitions in 6 18 60; do
    base="$run-p$partitions"
    setup "$base" "$partitions"
    $bin produce --count "$scaling_events" --invalid-ratio 0.01 --seed 9 > /dev/null 2>&1
    for workers in 1 2 4; do
      export PIXLAKE__WAREHOUSE__ROOT="$work/$base-w$workers"
      for i in 0 1 2; do
        export "PIXLAKE__PIPELINES__${i}__GROUP=$base-w$workers-$i"
      done
      PIXLAKE__INGEST__WORKER_THREADS=$workers timed "$work/s.time" $bin ingest --until-caught-up > /dev/null 2>&1
      s=$(field "$work/s.time" 1)
      cpu=$(echo "$(field "$work/s.time" 2) + $(field "$work/s.time" 3)" | bc)
      printf '%-12s %-8s %10.0f %10.1f %9d\n' "$partitions" "$workers" "$(echo "$scaling_events / $s" | bc -l)" \
        "$(echo "$cpu * 1000000 / $scaling_events" | bc -l)" $(( $(field "$work/s.time" 4) / 1024 ))
    done
  done
fi
