# syntax=docker/dockerfile:1
# pixlake as a container: built in a Rust image, run in a small Debian one as a non-root user.
#
#   docker build -t pixlake .
#   docker run --rm pixlake --help
#   docker compose up --scale pixlake=3      (docker-compose.yml: Kafka, MinIO, Prometheus, Grafana)
#
# The runtime image holds the binary, the shared libraries librdkafka links (OpenSSL for TLS,
# Cyrus SASL with its GSSAPI plugin and kinit for Kerberos, all with Debian's security updates)
# and the CA certificates;
# the configuration comes from /etc/pixlake/pixlake.yaml (a volume or ConfigMap) and
# PIXLAKE__SECTION__KEY variables, secrets from files under /run/secrets.

FROM rust:1.95-slim-bookworm AS build
# librdkafka builds from source against the system's OpenSSL and Cyrus SASL.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential perl pkg-config libssl-dev libsasl2-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY benches benches
COPY src src
RUN cargo build --release --locked --bin pixlake \
 && strip target/release/pixlake

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl libssl3 libsasl2-2 libsasl2-modules \
      libsasl2-modules-gssapi-mit krb5-user \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/pixlake --create-home pixlake
COPY --from=build /src/target/release/pixlake /usr/local/bin/pixlake
COPY config/pixlake.yaml /etc/pixlake/pixlake.yaml
USER 10001
WORKDIR /var/lib/pixlake
# /metrics, /healthz and /readyz, reachable from outside the container.
ENV PIXLAKE__TELEMETRY__LISTEN=0.0.0.0:9898 \
    PIXLAKE__TELEMETRY__LOG_FORMAT=json
EXPOSE 9898
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["curl", "-fsS", "http://127.0.0.1:9898/healthz"]
ENTRYPOINT ["pixlake", "--config", "/etc/pixlake/pixlake.yaml"]
CMD ["ingest"]
