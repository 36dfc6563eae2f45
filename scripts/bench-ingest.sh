#!/usr/bin/env bash
# End-to-end ingest benchmark: EVENTS pre-produced events (2 % invalid) on fresh topics, then
#   1. baseline: kcat reads all of them to /dev/null (the raw consume rate on this machine);
#   2. pixlake ingest --until-caught-up into a fresh warehouse (release build).
# Prints events/s and MB/s of both, pixlake's peak RSS, and the Parquet files written.
#
#   scripts/bench-ingest.sh [EVENTS]     (default 2000000)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
events=${1:-2000000}
for tool in kcat bc; do
  command -v $tool >/dev/null || { echo "bench-ingest.sh: needs $tool (apt-get install $tool)" >&2; exit 1; }
done
scripts/kafka.sh start >/dev/null
cargo build --release --locked -q
bin=$PWD/target/release/pixlake
run="bench-$(date +%s)"
work=$(mktemp -d)
# The topics hold the whole input (1.4 GB per 2 million events): deleted at exit, like the warehouse.
trap 'rm -rf "$work"; scripts/kafka.sh delete "$run.payments" "$run.receipts" "$run.refunds" "$run.dlq" >/dev/null 2>&1 || true' EXIT
export PIXLAKE__WAREHOUSE__ROOT="$work/warehouse" PIXLAKE__DLQ__TOPIC="$run.dlq" PIXLAKE__TELEMETRY__LISTEN=127.0.0.1:0
PIXLAKE_KAFKA_TOPICS="$run.payments $run.receipts $run.refunds" PIXLAKE_KAFKA_DLQ="$run.dlq" \
  scripts/kafka.sh topics >/dev/null
for i in 0 1 2; do
  t=$(echo payments receipts refunds | cut -d' ' -f$((i + 1)))
  export "PIXLAKE__PIPELINES__${i}__TOPIC=$run.$t" "PIXLAKE__PIPELINES__${i}__GROUP=$run-$t"
done
echo "== producing $events events to $run.* (not timed)"
$bin produce --count "$events" --invalid-ratio 0.02 --seed 5 2>&1 | tail -1

bytes_of() { awk '{s += $1} END {print s}'; }
echo "== baseline: kcat consumes the three topics to /dev/null"
start=$(date +%s.%N)
kbytes=0
for t in payments receipts refunds; do
  n=$(kcat -b 127.0.0.1:9092 -C -t "$run.$t" -o beginning -e -q -f '%S\n' | bytes_of)
  kbytes=$((kbytes + ${n:-0}))
done
kcat_s=$(echo "$(date +%s.%N) - $start" | bc)

echo "== pixlake ingest --until-caught-up"
start=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$work/rss" $bin ingest --until-caught-up > "$work/summary" 2> "$work/log"
ingest_s=$(echo "$(date +%s.%N) - $start" | bc)
cat "$work/summary"
files=$(find "$work/warehouse" -name '*.parquet' | wc -l)
parquet_mb=$(du -sm --apparent-size "$work/warehouse" | cut -f1)
commits=$(grep -c 'committed batch' "$work/log" || true)
mb=$(echo "scale=1; $kbytes / 1048576" | bc)
printf '\n%-28s %10s %10s\n' "" "events/s" "MB/s"
printf '%-28s %10.0f %10.1f\n' "kcat -C (raw consume)" "$(echo "$events / $kcat_s" | bc -l)" "$(echo "$mb / $kcat_s" | bc -l)"
printf '%-28s %10.0f %10.1f\n' "pixlake ingest (end to end)" "$(echo "$events / $ingest_s" | bc -l)" "$(echo "$mb / $ingest_s" | bc -l)"
printf 'ratio pixlake/kcat: %.2f\n' "$(echo "$kcat_s / $ingest_s" | bc -l)"
echo "input: $events events, $mb MB of values; pixlake peak RSS: $(( $(cat "$work/rss") / 1024 )) MiB"
echo "output: $files Parquet files, $parquet_mb MB in the warehouse, $commits batch commits"
