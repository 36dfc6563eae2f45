# Sourced by the Spark scripts: a virtualenv with PySpark 3.5 + delta-spark 3.3 in
# ~/.cache/pixlake (installed once from PyPI; the delta jars come from Maven Central through
# Spark's package resolver on first use). Sets $spark_python.
cache=${PIXLAKE_CACHE:-$HOME/.cache/pixlake}
venv="$cache/spark-venv"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import pyspark, delta' 2>/dev/null; then
  echo "installing pyspark 3.5.7 and delta-spark 3.3.2 into $venv (once)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q pyspark==3.5.7 delta-spark==3.3.2
fi
spark_python="$venv/bin/python"
