#!/usr/bin/env bash
# Interoperability check: Apache Spark with delta-spark reads the Delta tables pixlake writes.
#
#   scripts/spark-check.sh
#
# Lets `pixlake ingest` write the four tables from 12 000 generated records on the real broker
# (the `every_record_lands_exactly_once…` test, several commits per table, txn-only commits
# included), then reads them with PySpark 3.5 + delta-spark 3.3 (scripts/spark/venv.sh) and
# checks the Spark types of the columns analysts use and the total row count. Then the same on
# an S3 warehouse: the tables tests/s3.rs leaves in the local S3 store (scripts/s3.sh), read
# through Spark's S3A connector with the row count pixlake's checker counted.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/spark/venv.sh
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
PIXLAKE_TABLES_OUT="$out" cargo test --locked -q --test ingest every_record_lands_exactly_once >/dev/null
"$spark_python" scripts/spark/read_tables.py "$out" 12000 2> "$out.log" | grep -v '^\s*$' \
  || { echo "spark-check.sh: Spark could not read the tables; its log: $out.log" >&2; exit 1; }
echo "== the same tables on S3, read through S3A (first run fetches hadoop-aws once)"
PIXLAKE_S3_TABLES_OUT="$out/s3" cargo test --locked -q --test s3 every_command_works_on_an_s3_warehouse >/dev/null
read -r root rows < "$out/s3"
PIXLAKE_SPARK_S3_ENDPOINT="http://127.0.0.1:${PIXLAKE_S3_PORT:-9100}" PIXLAKE_SPARK_S3_ACCESS_KEY=pixlake \
  PIXLAKE_SPARK_S3_SECRET_KEY=pixlake-secret \
  "$spark_python" scripts/spark/read_tables.py "$root" "$rows" 2> "$out.s3.log" | grep -v '^\s*$' \
  || { echo "spark-check.sh: Spark could not read the S3 tables; its log: $out.s3.log" >&2; exit 1; }
