#!/usr/bin/env bash
# A real, local Apache Kafka broker for pixlake's development and tests.
#
#   scripts/kafka.sh start    fetch (once), format (once), start, wait until served, create topics
#   scripts/kafka.sh stop     stop the broker (SIGTERM, then SIGKILL after 30 s)
#   scripts/kafka.sh status   exit 0 and print the pid if the broker serves clients, exit 1 otherwise
#   scripts/kafka.sh reset    stop, wipe the data directory, start again with empty topics
#   scripts/kafka.sh topics   (re)create the topics on a running broker
#   scripts/kafka.sh delete TOPIC…   delete topics (benchmarks clean up their millions of records)
#   scripts/kafka.sh client-env sasl|mtls   print the PIXLAKE__KAFKA__… settings of a secure client
#
# Besides the plaintext listener (PIXLAKE_KAFKA_PORT, default 9092) the broker serves, on the next
# ports but one: SASL_SSL with SCRAM-SHA-512/256 (port+2, user `pixlake`, its password in
# $run/tls/scram-password, created with the broker's own kafka-configs tool) and mutual TLS
# (port+3, client certificate required). A test CA, the broker's certificate (for 127.0.0.1 and
# localhost), a client certificate, an expired client certificate and a second CA that signed
# nothing of the broker's are made with openssl on first start, in $run/tls.
#
# One combined KRaft broker+controller on 127.0.0.1, run from the org.apache.kafka:kafka_2.13
# jars that Maven resolves from Maven Central (scripts/kafka/pom.xml). The jars are cached outside
# the repository, so a second start needs no network. Everything is idempotent.
#
# Environment (all optional):
#   PIXLAKE_CACHE            cache root                   (default: ~/.cache/pixlake)
#   PIXLAKE_KAFKA_DIR        data, config, log and pid    (default: $PIXLAKE_CACHE/kafka-run)
#   PIXLAKE_KAFKA_PORT       client port                  (default: 9092; controller uses port+1)
#   PIXLAKE_KAFKA_PARTITIONS partitions per source topic  (default: 6)
#   PIXLAKE_KAFKA_TOPICS     source topics                (default: pix.payments pix.receipts pix.refunds)
#   PIXLAKE_KAFKA_DLQ        dead-letter topic            (default: pix.dlq)
#   PIXLAKE_KAFKA_HEAP       JVM heap                     (default: 1g)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")
cache=${PIXLAKE_CACHE:-$HOME/.cache/pixlake}
# Keyed by the pom's content: changing the dependencies fetches a fresh set.
libs="$cache/kafka-$kafka_version-$(sha256sum "$here/kafka/pom.xml" | cut -c1-12)/libs"
run=${PIXLAKE_KAFKA_DIR:-$cache/kafka-run}
port=${PIXLAKE_KAFKA_PORT:-9092}
cport=$((port + 1))
sasl_port=$((port + 2))
tls_port=$((port + 3))
partitions=${PIXLAKE_KAFKA_PARTITIONS:-6}
topics=${PIXLAKE_KAFKA_TOPICS:-pix.payments pix.receipts pix.refunds}
dlq=${PIXLAKE_KAFKA_DLQ:-pix.dlq}
heap=${PIXLAKE_KAFKA_HEAP:-1g}
bootstrap="127.0.0.1:$port"
tls="$run/tls"
# The broker's keystore password (a local test broker's; nothing to protect).
ks_pass=pixlake-test-keystore

say() { echo "kafka.sh: $*" >&2; }
die() { say "$*"; exit 1; }

need_java() {
  command -v java >/dev/null || die "java not found: install a JDK 17 or newer (Debian: apt-get install openjdk-17-jre-headless)"
  local v
  v=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/ *java.specification.version = //p')
  [[ ${v%%.*} -ge 17 ]] || die "Kafka $kafka_version needs Java 17 or newer, found $v: install openjdk-17"
}

fetch() {
  [[ -f "$libs/.complete" ]] && return 0
  command -v mvn >/dev/null || die "mvn not found: it fetches Kafka from Maven Central once (Debian: apt-get install maven)"
  say "fetching Apache Kafka $kafka_version from Maven Central into $libs (once)"
  rm -rf "$libs" && mkdir -p "$libs"
  mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$libs" -DincludeScope=runtime >"$cache/kafka-fetch.log" 2>&1 \
    || die "could not fetch Kafka with Maven; see $cache/kafka-fetch.log"
  touch "$libs/.complete"
}

kjava() { java -Xmx256m -cp "$libs/*" -Dlog4j2.configurationFile="$run/log4j2.properties" "$@"; }

# The TLS material of the secure listeners, made once; `tls_made` says whether it was just made
# (a running broker must then be restarted to load it).
tls_made=false
make_tls() {
  [[ -f "$tls/.complete" ]] && return 0
  tls_made=true
  command -v openssl >/dev/null || die "openssl not found: it makes the test certificates (Debian: apt-get install openssl)"
  rm -rf "$tls" && mkdir -p "$tls/ca-db"
  (
    cd "$tls"
    quiet() { "$@" >/dev/null 2>>openssl.log || die "openssl failed making the test certificates; see $tls/openssl.log"; }
    quiet openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 -subj "/CN=pixlake test CA"
    quiet openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days 3650 \
      -subj "/CN=a CA the broker does not know"
    quiet openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr -subj "/CN=localhost"
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >broker.ext
    quiet openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out broker.pem -days 3650 \
      -extfile broker.ext
    quiet openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -out broker.p12 \
      -passout "pass:$ks_pass"
    quiet openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=pixlake-client"
    quiet openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 3650
    # Expired: valid for one day in 2020 (`openssl ca` is the tool that sets both dates).
    quiet openssl req -newkey rsa:2048 -nodes -keyout expired-client.key -out expired-client.csr \
      -subj "/CN=pixlake-expired-client"
    touch ca-db/index.txt && echo 1000 >ca-db/serial
    cat >ca.cnf <<CNF
[ca]
default_ca = test
[test]
database = ca-db/index.txt
serial = ca-db/serial
new_certs_dir = ca-db
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = any
[any]
commonName = supplied
CNF
    quiet openssl ca -batch -config ca.cnf -notext -in expired-client.csr -out expired-client.pem \
      -startdate 20200101000000Z -enddate 20200102000000Z
    openssl rand -hex 16 >scram-password
    chmod 600 ./*.key scram-password
  ) || exit 1
  local f
  for f in ca.pem other-ca.pem broker.p12 client.pem client.key expired-client.pem expired-client.key scram-password; do
    [[ -s "$tls/$f" ]] || die "making the test certificates left $tls/$f empty; see $tls/openssl.log"
  done
  touch "$tls/.complete"
}

# The SCRAM user of the SASL_SSL listener, once per data directory and password (the broker
# keeps it in its metadata log; `reset` wipes both).
scram_user() {
  local pw mechanism done="$run/data/.pixlake-scram"
  pw=$(cat "$tls/scram-password")
  [[ -f "$done" && "$(cat "$done")" == "$(sha256sum <"$tls/scram-password")" ]] && return 0
  for mechanism in SCRAM-SHA-512 SCRAM-SHA-256; do
    kjava kafka.admin.ConfigCommand --bootstrap-server "$bootstrap" --alter --entity-type users --entity-name pixlake \
      --add-config "$mechanism=[password=$pw]" >/dev/null 2>"$tls/scram.log" \
      || die "could not create the SCRAM user; see $tls/scram.log"
  done
  sha256sum <"$tls/scram-password" >"$done"
}

# Environment for a pixlake client of the secure listeners: `sasl` or `mtls` (for `eval`).
client_env() {
  local p=PIXLAKE__KAFKA__PROPERTIES__
  out() { printf 'export %s=%q\n' "$1" "$2"; }
  case "${1:-}" in
    sasl)
      out PIXLAKE__KAFKA__BROKERS "127.0.0.1:$sasl_port"
      out "${p}SECURITY_PROTOCOL" SASL_SSL
      out "${p}SASL_MECHANISM" SCRAM-SHA-512
      out "${p}SASL_USERNAME" pixlake
      out "${p}SASL_PASSWORD_FILE" "$tls/scram-password"
      out "${p}SSL_CA_LOCATION" "$tls/ca.pem"
      ;;
    mtls)
      out PIXLAKE__KAFKA__BROKERS "127.0.0.1:$tls_port"
      out "${p}SECURITY_PROTOCOL" SSL
      out "${p}SSL_CA_LOCATION" "$tls/ca.pem"
      out "${p}SSL_CERTIFICATE_LOCATION" "$tls/client.pem"
      out "${p}SSL_KEY_LOCATION" "$tls/client.key"
      ;;
    *) die "usage: $0 client-env sasl|mtls" ;;
  esac
}

write_config() {
  mkdir -p "$run/data"
  cat >"$run/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport,SASL_SSL://127.0.0.1:$sasl_port,SSL://127.0.0.1:$tls_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sasl_port,SSL://127.0.0.1:$tls_port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL
# SASL_SSL: SCRAM users (kafka-configs); SSL: mutual TLS, a client certificate from the test CA.
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$tls/broker.p12
ssl.keystore.password=$ks_pass
ssl.key.password=$ks_pass
ssl.truststore.type=PEM
ssl.truststore.location=$tls/ca.pem
listener.name.ssl.ssl.client.auth=required
log.dirs=$run/data
num.partitions=$partitions
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Room for pixlake's OVERSIZED_MESSAGE test records (1 MiB + a little).
message.max.bytes=4194304
replica.fetch.max.bytes=4194304
log.retention.hours=-1
log.segment.bytes=268435456
PROPS
  cat >"$run/log4j2.properties" <<'PROPS'
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = warn
logger.apache.name = org.apache.kafka
logger.apache.level = warn
logger.kafkastartup.name = kafka.server.KafkaRaftServer
logger.kafkastartup.level = info
PROPS
}

pid_alive() { [[ -f "$run/kafka.pid" ]] && kill -0 "$(cat "$run/kafka.pid")" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/${1:-$port}") 2>/dev/null; }
serving() { kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" --list >/dev/null 2>&1; }

create_topics() {
  local t
  for t in $topics $dlq; do
    kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" --create --if-not-exists \
      --topic "$t" --partitions "$partitions" --replication-factor 1 >/dev/null \
      || die "could not create topic $t; see $run/kafka.log"
  done
  say "topics ready: $topics $dlq ($partitions partitions each)"
}

start() {
  need_java
  fetch
  make_tls
  if pid_alive && port_open && { ! port_open "$tls_port" || $tls_made; }; then
    say "the running broker lacks the secure listeners or their new certificates: restarting it"
    stop
  fi
  if pid_alive && port_open; then
    say "already running (pid $(cat "$run/kafka.pid")) on $bootstrap; log: $run/kafka.log"
    create_topics
    scram_user
    return 0
  fi
  if ! pid_alive && port_open; then
    die "port $port is taken by another process; stop it or set PIXLAKE_KAFKA_PORT"
  fi
  write_config
  if [[ ! -f "$run/data/meta.properties" ]]; then
    kjava kafka.tools.StorageTool format -t "$(kjava kafka.tools.StorageTool random-uuid)" \
      -c "$run/server.properties" >"$run/format.log" 2>&1 || die "formatting KRaft storage failed; see $run/format.log"
  fi
  # setsid: the broker outlives the shell that started it and gets no terminal signals.
  setsid nohup java -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$run/log4j2.properties" -cp "$libs/*" \
    kafka.Kafka "$run/server.properties" >>"$run/kafka.log" 2>&1 </dev/null &
  echo $! >"$run/kafka.pid"
  say "starting Kafka $kafka_version (pid $!) on $bootstrap; log: $run/kafka.log"
  local i
  for i in $(seq 1 120); do
    pid_alive || die "the broker exited during start-up; see $run/kafka.log"
    if port_open && serving; then
      create_topics
      scram_user
      say "serving clients on $bootstrap; SASL_SSL (SCRAM) on 127.0.0.1:$sasl_port, mutual TLS on 127.0.0.1:$tls_port (scripts/kafka.sh client-env sasl|mtls)"
      return 0
    fi
    sleep 1
  done
  die "the broker did not serve clients within 120 s; see $run/kafka.log"
}

stop() {
  if ! pid_alive; then say "not running"; rm -f "$run/kafka.pid"; return 0; fi
  local pid i
  pid=$(cat "$run/kafka.pid")
  kill "$pid"
  for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -0 "$pid" 2>/dev/null && { say "no exit after 30 s, killing"; kill -9 "$pid"; sleep 1; }
  rm -f "$run/kafka.pid"
  say "stopped"
}

delete_topics() {
  local t
  for t in "$@"; do
    kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" --delete --if-exists --topic "$t" >/dev/null \
      || die "could not delete topic $t; see $run/kafka.log"
  done
  say "deleted: $*"
}

status() {
  if pid_alive && port_open; then
    echo "running pid=$(cat "$run/kafka.pid") bootstrap=$bootstrap log=$run/kafka.log"
  else
    echo "not running"; return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  reset) stop; rm -rf "$run/data"; start ;;
  topics) need_java; fetch; create_topics ;;
  delete) shift; need_java; fetch; delete_topics "$@" ;;
  client-env) client_env "${2:-}" ;;
  *) echo "usage: $0 start|stop|status|reset|topics|delete TOPIC…|client-env sasl|mtls" >&2; exit 2 ;;
esac
