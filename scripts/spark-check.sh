#!/usr/bin/env bash
# Interoperability check: Apache Spark with delta-spark reads the Delta tables pixlake writes.
#
#   scripts/spark-check.sh
#
# Writes the four tables from generated traffic (the `generated_traffic_lands_in_four_tables`
# test), then reads them with PySpark 3.5 + delta-spark 3.3 (installed once into a virtualenv in
# ~/.cache/pixlake; the delta jars come from Maven Central through Spark's package resolver)
# and checks the Spark types of the columns analysts use and the total row count.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cache=${PIXLAKE_CACHE:-$HOME/.cache/pixlake}
venv="$cache/spark-venv"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import pyspark, delta' 2>/dev/null; then
  echo "spark-check.sh: installing pyspark 3.5.7 and delta-spark 3.3.2 into $venv (once)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q pyspark==3.5.7 delta-spark==3.3.2
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
PIXLAKE_TABLES_OUT="$out" cargo test --locked -q --test delta_sink generated_traffic_lands_in_four_tables >/dev/null
"$venv/bin/python" scripts/spark/read_tables.py "$out" 5000 2> "$out.log" | grep -v '^\s*$' \
  || { echo "spark-check.sh: Spark could not read the tables; its log: $out.log" >&2; exit 1; }
