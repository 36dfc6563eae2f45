#!/usr/bin/env bash
# A local S3-compatible object store for the tests and for trying an S3 warehouse: moto's
# server mode (PyPI `moto[server]`, pinned; installed once into a virtualenv under
# ~/.cache/pixlake), on 127.0.0.1 only. It honours conditional writes (`If-None-Match: *`
# answered 412 when the key exists), which Delta commits on S3 rely on; tests/s3.rs proves it
# before anything else runs against it.
#
#   scripts/s3.sh start           install (once), start, wait until it answers, create the bucket
#   scripts/s3.sh restart         stop, then start with an empty store (moto keeps everything in memory)
#   scripts/s3.sh stop | status
#   scripts/s3.sh bucket NAME     create a bucket
#   scripts/s3.sh env             `export PIXLAKE__WAREHOUSE__…` lines for an S3 warehouse (eval them)
#
# Environment: PIXLAKE_S3_PORT (default 9100), PIXLAKE_S3_BUCKET (default pixlake),
# PIXLAKE_CACHE (default ~/.cache/pixlake).
set -euo pipefail
cache=${PIXLAKE_CACHE:-$HOME/.cache/pixlake}
port=${PIXLAKE_S3_PORT:-9100}
bucket=${PIXLAKE_S3_BUCKET:-pixlake}
venv="$cache/s3-venv"
run="$cache/s3-run"
endpoint="http://127.0.0.1:$port"
moto_version=5.2.5

install() {
  if [[ -x "$venv/bin/moto_server" ]] && "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$moto_version')" 2>/dev/null; then
    return
  fi
  echo "s3.sh: installing moto[server] $moto_version into $venv (once)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "moto[server]==$moto_version"
}

# moto answers on its own API path (another server on the port would not).
answers() {
  curl -fs -o /dev/null --max-time 2 "$endpoint/moto-api/" 2>/dev/null
}

make_bucket() {
  # moto accepts unsigned requests; a bucket that exists already answers 409 (fine).
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$endpoint/$1")
  [[ $code == 200 || $code == 409 ]] || { echo "s3.sh: cannot create bucket $1 (HTTP $code)" >&2; exit 1; }
}

case "${1:-}" in
  start)
    install
    mkdir -p "$run"
    if ! answers; then
      nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$run/moto.log" 2>&1 &
      echo $! >"$run/pid"
      for _ in $(seq 1 60); do
        answers && break
        sleep 0.5
      done
      answers || { echo "s3.sh: moto did not start; its log: $run/moto.log" >&2; exit 1; }
      echo "s3.sh: S3-compatible store (moto $moto_version) on $endpoint; log: $run/moto.log" >&2
    fi
    make_bucket "$bucket"
    ;;
  stop)
    if [[ -f "$run/pid" ]]; then
      kill "$(cat "$run/pid")" 2>/dev/null || true
      rm -f "$run/pid"
      for _ in $(seq 1 20); do
        answers || break
        sleep 0.25
      done
    fi
    ;;
  restart)
    "$0" stop
    exec "$0" start
    ;;
  status)
    if answers; then echo "S3 store on $endpoint"; else echo "no S3 store on $endpoint"; exit 1; fi
    ;;
  bucket)
    make_bucket "${2:?bucket name}"
    ;;
  env)
    cat <<ENV
export PIXLAKE__WAREHOUSE__ROOT=s3://$bucket/lake
export PIXLAKE__WAREHOUSE__ENDPOINT=$endpoint
export PIXLAKE__WAREHOUSE__REGION=us-east-1
export PIXLAKE__WAREHOUSE__PATH_STYLE=true
export PIXLAKE__WAREHOUSE__ACCESS_KEY_ID=pixlake
export PIXLAKE__WAREHOUSE__SECRET_ACCESS_KEY=pixlake-secret
ENV
    ;;
  *)
    echo "usage: scripts/s3.sh start|stop|status|bucket NAME|env" >&2
    exit 2
    ;;
esac
