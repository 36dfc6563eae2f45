#!/usr/bin/env bash
# Benchmark of `pixlake produce` into the local Kafka broker, against two baselines measured in
# the same run on the same machine:
#   generator: `pixlake produce --output /dev/null` (the generator alone, no Kafka);
#   kcat:      `kcat -P` publishing the same pre-generated records with the same producer
#              settings (acks=all, idempotent, lz4, linger 100 ms) — librdkafka's raw rate here.
#
#   scripts/bench-produce.sh [EVENTS]    (default 500000)
#
# Needs kcat (Debian: apt-get install kcat). Timing only: prints a table, asserts nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-500000}
command -v kcat >/dev/null || { echo "bench-produce.sh: kcat not found: apt-get install kcat" >&2; exit 1; }
scripts/kafka.sh start >/dev/null 2>&1
cargo build --release --locked -q
bin=target/release/pixlake
topic=pixlake.bench.$$
PIXLAKE_KAFKA_TOPICS="$topic" PIXLAKE_KAFKA_DLQ="$topic.dlq" scripts/kafka.sh topics >/dev/null 2>&1
file=$(mktemp --suffix=.jsonl)
trap 'rm -f "$file"; scripts/kafka.sh delete "$topic" "$topic.dlq" >/dev/null 2>&1 || true' EXIT

now() { date +%s.%N; }
rate() { awk -v n="$n" -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", n / (b - a) }'; }

t0=$(now); $bin produce --count "$n" --seed 7 --output /dev/null 2>/dev/null; t1=$(now)
gen=$(rate "$t0" "$t1")
t0=$(now); $bin produce --count "$n" --seed 7 2>/dev/null; t1=$(now)
pix=$(rate "$t0" "$t1")
$bin produce --count "$n" --seed 7 --output "$file" 2>/dev/null
t0=$(now)
kcat -P -b 127.0.0.1:9092 -t "$topic" -z lz4 -X acks=all -X enable.idempotence=true \
  -X linger.ms=100 -X batch.size=4000000 -X queue.buffering.max.messages=1000000 <"$file"
t1=$(now)
kc=$(rate "$t0" "$t1")
bytes=$(stat -c %s "$file")
echo "$n events, $((bytes / n)) bytes on average, $(nproc) cores"
printf '%-58s %12s %8s\n' "run" "events/s" "× kcat"
printf '%-58s %12s %8s\n' "generator alone (produce --output /dev/null)" "$gen" "$(awk -v a="$gen" -v b="$kc" 'BEGIN{printf "%.2f", a/b}')"
printf '%-58s %12s %8s\n' "baseline: kcat -P, same records, same producer settings" "$kc" "1.00"
printf '%-58s %12s %8s\n' "pixlake produce into Kafka (acks=all, idempotent)" "$pix" "$(awk -v a="$pix" -v b="$kc" 'BEGIN{printf "%.2f", a/b}')"
