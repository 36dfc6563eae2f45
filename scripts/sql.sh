#!/usr/bin/env bash
# Query the Delta tables with Apache Spark SQL (PySpark + delta-spark, installed once into
# ~/.cache/pixlake). Every table under the warehouse is a view named after it.
#
#   scripts/sql.sh "SELECT error_rule, count(*) FROM pix_quarantine GROUP BY 1 ORDER BY 2 DESC"
#   PIXLAKE_WAREHOUSE=/data/lake scripts/sql.sh "SELECT ..." "SELECT ..."
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $# -ge 1 ]] || { sed -n '2,7p' "$0" >&2; exit 2; }
source scripts/spark/venv.sh
warehouse=${PIXLAKE_WAREHOUSE:-${PIXLAKE__WAREHOUSE__ROOT:-./warehouse}}
[[ -d "$warehouse" ]] || { echo "sql.sh: no warehouse at $warehouse; run pixlake ingest first" >&2; exit 1; }
log=$(mktemp --suffix=.spark.log)
if "$spark_python" scripts/spark/sql.py "$warehouse" "$@" 2>"$log"; then
  rm -f "$log"
else
  tail -n 30 "$log" >&2
  echo "sql.sh: Spark failed; full log in $log" >&2
  exit 1
fi
