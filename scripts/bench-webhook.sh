#!/usr/bin/env bash
# Benchmark of `pixlake webhook`: 64 concurrent clients POST bodies of 100 items each (plain
# HTTP on loopback, examples/webhook_load.rs), every event acknowledged by the local broker
# before the 200 — against the baseline measured in the same run: `pixlake produce` publishing
# the same number of events into the same broker (acks=all, idempotent).
#
#   scripts/bench-webhook.sh [REQUESTS] [CLIENTS] [ITEMS]    (default 2000 64 100: 200 000 events)
#
# Timing only: prints a table, asserts nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
requests=${1:-2000}
clients=${2:-64}
items=${3:-100}
n=$((requests * items))
scripts/kafka.sh start >/dev/null 2>&1
cargo build --release --locked -q --bin pixlake --example webhook_load
bin=target/release/pixlake
run=pixlake.bench.webhook.$$
topics="$run.payments,$run.receipts,$run.refunds"
PIXLAKE_KAFKA_TOPICS="$topics" PIXLAKE_KAFKA_DLQ="$run.dlq" scripts/kafka.sh topics >/dev/null 2>&1
dir=$(mktemp -d)
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  scripts/kafka.sh delete "$run.payments" "$run.receipts" "$run.refunds" "$run.dlq" >/dev/null 2>&1 || true
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export PIXLAKE__PIPELINES__0__TOPIC=$run.payments PIXLAKE__PIPELINES__1__TOPIC=$run.receipts \
  PIXLAKE__PIPELINES__2__TOPIC=$run.refunds PIXLAKE__DLQ__TOPIC=$run.dlq \
  PIXLAKE__TELEMETRY__LISTEN= PIXLAKE__WEBHOOK__LISTEN=127.0.0.1:$port \
  PIXLAKE__WEBHOOK__DEDUP_PATH=$dir/dedup.redb PIXLAKE__WEBHOOK__MAX_CONCURRENT_REQUESTS=$clients
$bin webhook 2>"$dir/webhook.log" &
pid=$!
for _ in $(seq 100); do grep -q "webhook: serving" "$dir/webhook.log" && break; sleep 0.2; done
now() { date +%s.%N; }
t0=$(now); $bin produce --count "$n" --seed 7 >/dev/null 2>&1; t1=$(now)
base=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
out=$(target/release/examples/webhook_load "http://127.0.0.1:$port/pix" "$clients" "$items" "$requests")
hook=$(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["events_per_s"]))' "$out")
retries=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["retries"])' "$out")
echo "$n events ($requests requests × $items items, $clients clients), $(nproc) cores, broker co-located"
printf '%-62s %12s %10s\n' "run" "events/s" "× produce"
printf '%-62s %12s %10s\n' "baseline: pixlake produce into Kafka (acks=all, idempotent)" "$base" "1.00"
printf '%-62s %12s %10s\n' "pixlake webhook: 200 after every ack, dedup index ($retries retries)" "$hook" \
  "$(awk -v a="$hook" -v b="$base" 'BEGIN{printf "%.2f", a/b}')"
