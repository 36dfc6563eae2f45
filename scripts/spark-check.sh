#!/usr/bin/env bash
# Interoperability check: Apache Spark with delta-spark reads the Delta tables pixlake writes.
#
#   scripts/spark-check.sh
#
# Lets `pixlake ingest` write the four tables from 12 000 generated records on the real broker
# (the `every_record_lands_exactly_once…` test, several commits per table, txn-only commits
# included), then reads them with PySpark 3.5 + delta-spark 3.3 (scripts/spark/venv.sh) and
# checks the Spark types of the columns analysts use and the total row count.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/spark/venv.sh
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
PIXLAKE_TABLES_OUT="$out" cargo test --locked -q --test ingest every_record_lands_exactly_once >/dev/null
"$spark_python" scripts/spark/read_tables.py "$out" 12000 2> "$out.log" | grep -v '^\s*$' \
  || { echo "spark-check.sh: Spark could not read the tables; its log: $out.log" >&2; exit 1; }
