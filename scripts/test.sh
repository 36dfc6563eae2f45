#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, property and integration tests against a real
# Apache Kafka broker (started here when none is running).
#
#   scripts/test.sh            everything
#   scripts/test.sh -- NAME    only tests whose name contains NAME (passed to cargo test)
#
# Needs: Rust (cargo), Java 17+ and Maven (for the broker), Prometheus and promtool (observability
# tests), Python 3 with venv (for the Spark interoperability check); scripts/setup.sh installs
# what is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
scripts/kafka.sh start
# The S3-compatible store (moto, on 127.0.0.1) the S3 warehouse tests write to; empty at every
# run (it keeps everything in memory).
scripts/s3.sh restart

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
# Integration tests share one broker but use topics of their own.
cargo test --locked "$@"
if [[ $# -eq 0 ]]; then
  echo "== Apache Spark reads the Delta tables"
  scripts/spark-check.sh
fi
