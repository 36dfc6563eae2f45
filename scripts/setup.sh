#!/usr/bin/env bash
# Installs what pixlake's build and tests need and is missing: a C toolchain for librdkafka and
# the OpenSSL and Cyrus SASL headers it builds against,
# Java 17+ and Maven for the local Kafka broker, Prometheus and promtool (observability tests),
# rustfmt and clippy. Idempotent and quiet when everything is there; uses apt-get
# (Debian/Ubuntu) when something is missing.
set -euo pipefail

missing=()
command -v cc >/dev/null || missing+=(build-essential)
command -v make >/dev/null || missing+=(make)
command -v perl >/dev/null || missing+=(perl)
# librdkafka links the system's OpenSSL (TLS) and Cyrus SASL (GSSAPI), found with pkg-config.
command -v pkg-config >/dev/null || missing+=(pkg-config)
[[ -f /usr/include/openssl/ssl.h ]] || missing+=(libssl-dev)
[[ -f /usr/include/sasl/sasl.h ]] || missing+=(libsasl2-dev)
# scripts/kafka.sh makes the test CA and certificates; the codec tests publish with kcat -z.
command -v openssl >/dev/null || missing+=(openssl)
command -v kcat >/dev/null || missing+=(kcat)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
# The observability tests scrape pixlake with a real Prometheus and run promtool on monitoring/.
{ command -v prometheus >/dev/null && command -v promtool >/dev/null; } || missing+=(prometheus)

if ((${#missing[@]})); then
  if ! command -v apt-get >/dev/null; then
    echo "setup.sh: missing ${missing[*]} and no apt-get here: install them with your package manager" >&2
    exit 1
  fi
  echo "setup.sh: installing ${missing[*]}" >&2
  sudo_cmd=""
  [[ $(id -u) -eq 0 ]] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup.sh: cargo not found: install Rust 1.95 or newer (https://rustup.rs), then rerun" >&2
  exit 1
fi
if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi
