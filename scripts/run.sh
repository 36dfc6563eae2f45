#!/usr/bin/env bash
# The main job, end to end on this machine: start a real Apache Kafka broker, build pixlake,
# publish realistic Pix traffic (5 % deliberately invalid) to the three topics, ingest it into
# the Delta tables under ./warehouse exactly once until caught up, print rows per table and
# rejections per rule, and query the tables with Apache Spark SQL.
#
#   scripts/run.sh [EVENTS]      (default 200000)
#
# Running it again publishes more events; ingest picks up where the tables' offsets say.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
events=${1:-200000}

scripts/setup.sh
scripts/kafka.sh start
cargo build --release --locked
bin=target/release/pixlake

echo "== publishing $events events (5 % invalid, 0.5 % fraud episodes) to Kafka"
$bin produce --count "$events" --invalid-ratio 0.05 --fraud-ratio 0.005 --seed "$(date +%s)"

echo "== ingesting into ./warehouse until every partition is committed up to its end"
$bin ingest --until-caught-up

echo "== the tables, read by Apache Spark (first run installs PySpark + delta-spark once)"
scripts/sql.sh \
  "SELECT 'pix_payments' AS table_name, count(*) AS rows FROM pix_payments
   UNION ALL SELECT 'pix_receipts', count(*) FROM pix_receipts
   UNION ALL SELECT 'pix_refunds', count(*) FROM pix_refunds
   UNION ALL SELECT 'pix_quarantine', count(*) FROM pix_quarantine" \
  "SELECT error_rule, count(*) AS rejected FROM pix_quarantine GROUP BY error_rule ORDER BY rejected DESC"

cat <<'MSG'

Query the tables yourself (every table under ./warehouse is a view of the same name):
  scripts/sql.sh "SELECT event_date, count(*), sum(amount) FROM pix_payments GROUP BY 1 ORDER BY 1"
or from a Spark notebook: spark.read.format("delta").load("<repo>/warehouse/pix_payments")
MSG
