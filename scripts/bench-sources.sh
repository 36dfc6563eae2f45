#!/usr/bin/env bash
# Benchmark of the sources, against the baseline measured in the same run: `pixlake produce`
# publishing the same number of events into the same broker (acks=all, idempotent).
#   webhook:  64 concurrent clients POST bodies of 100 items each (plain HTTP on loopback,
#             examples/webhook_load.rs), every event acknowledged before the 200;
#   ship-log: the same number of log lines in one file, shipped until the checkpoint covers it.
#
#   scripts/bench-sources.sh [REQUESTS] [CLIENTS] [ITEMS]    (default 2000 64 100: 200 000 events)
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
topics="$run.payments $run.receipts $run.refunds"
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
grep -q "webhook: serving" "$dir/webhook.log" || { echo "bench-sources.sh: the webhook did not start:" >&2; cat "$dir/webhook.log" >&2; exit 1; }
now() { date +%s.%N; }
t0=$(now); $bin produce --count "$n" --seed 7 >/dev/null 2>&1; t1=$(now)
base=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
out=$(target/release/examples/webhook_load "http://127.0.0.1:$port/pix" "$clients" "$items" "$requests")
hook=$(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["events_per_s"]))' "$out")
retries=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["retries"])' "$out")
# ship-log: n lines, mapped, published, checkpointed.
kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; pid=
python3 - "$dir/core.jsonl" "$n" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write('{"id":"00000000-0000-4000-8000-%012d","tipo":"PIX_ENVIADO","quando":"2026-12-01 09:00:30",'
                '"e2e":"E18236120202612011200%011d","valor_centavos":%d,"situacao":"OK",'
                '"origem":{"ispb":"18236120","doc":"52998224725"},"destino":{"ispb":"60701190","doc":"11222333000181"}}\n'
                % (i, i, 100 + i))
PY
cat >"$dir/ship.yaml" <<'YAML'
ship_log:
  mapping:
    event_type: { from: tipo, map: { PIX_ENVIADO: payment } }
    fields:
      event_id: { from: id }
      event_time: { from: quando, time: true }
      data.end_to_end_id: { from: e2e }
      data.amount: { from: valor_centavos, amount: centavos }
      data.currency: { const: BRL }
      data.initiation_type: { const: MANU }
      data.status: { from: situacao, map: { OK: ACSC } }
      data.payer.ispb: { from: origem.ispb }
      data.payer.document: { from: origem.doc }
      data.payee.ispb: { from: destino.ispb }
      data.payee.document: { from: destino.doc }
YAML
size=$(stat -c %s "$dir/core.jsonl")
t0=$(now)
PIXLAKE__SHIP_LOG__CHECKPOINT_PATH=$dir/ship.json $bin --config "$dir/ship.yaml" ship-log "$dir/core.jsonl" 2>"$dir/ship.log" &
pid=$!
until python3 -c 'import json,sys; f=json.load(open(sys.argv[1]))["files"]; sys.exit(0 if f and f[0]["offset"] == int(sys.argv[2]) else 1)' \
  "$dir/ship.json" "$size" 2>/dev/null; do
  kill -0 "$pid" 2>/dev/null || { echo "bench-sources.sh: ship-log stopped:" >&2; cat "$dir/ship.log" >&2; exit 1; }
  sleep 0.05
done
t1=$(now)
ship=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
echo "$n events ($requests requests × $items items, $clients clients), $(nproc) cores, broker co-located"
printf '%-62s %12s %10s\n' "run" "events/s" "× produce"
printf '%-62s %12s %10s\n' "baseline: pixlake produce into Kafka (acks=all, idempotent)" "$base" "1.00"
printf '%-62s %12s %10s\n' "pixlake webhook: 200 after every ack, dedup index ($retries retries)" "$hook" \
  "$(awk -v a="$hook" -v b="$base" 'BEGIN{printf "%.2f", a/b}')"
printf '%-62s %12s %10s\n' "pixlake ship-log: one file, batches of 5000, checkpointed" "$ship" \
  "$(awk -v a="$ship" -v b="$base" 'BEGIN{printf "%.2f", a/b}')"
