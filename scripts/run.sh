#!/usr/bin/env bash
# The main job, end to end on this machine: start a real Kafka broker, build pixlake, publish
# realistic Pix traffic (with some invalid records) to the three topics — every record
# acknowledged — and show how pixlake's rules judge the same traffic.
#
#   scripts/run.sh [EVENTS]      (default 200000)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
events=${1:-200000}

scripts/setup.sh
scripts/kafka.sh start
cargo build --release --locked
bin=target/release/pixlake

echo "== publishing $events events (5 % invalid, 0.5 % fraud episodes) to Kafka"
$bin produce --count "$events" --invalid-ratio 0.05 --fraud-ratio 0.005 --seed 1

echo "== the same traffic, judged offline by the ingest rules (summary by rule id)"
sample=$(mktemp --suffix=.jsonl)
trap 'rm -f "$sample"' EXIT
$bin produce --count "$events" --invalid-ratio 0.05 --fraud-ratio 0.005 --seed 1 --output "$sample" 2>/dev/null
$bin validate "$sample" | sed -n '/ lines: /,$p' || true

cat <<'MSG'

The records are on pix.payments, pix.receipts and pix.refunds (see `scripts/kafka.sh status`).
Look at a few with kcat, and check them with the same rules:
  kcat -b 127.0.0.1:9092 -C -t pix.payments -c 5 -J | target/release/pixlake validate -
MSG
