//! pixlake archives Brazilian Pix events from Apache Kafka into Delta Lake tables, exactly once.
//!
//! Module map, in the order data flows:
//!
//! * [`config`]: the YAML configuration with `PIXLAKE__SECTION__KEY` overrides, validated once.
//! * [`pix`]: the pure Pix domain — parse, validate, normalize, Arrow schemas and builders.
//! * [`kafka`]: librdkafka client settings shared by every Kafka client pixlake creates.
//! * [`offsets`]: where a source partition stands in Delta (the two tables' offsets, resume
//!   point, lag, app ids) — pure, shared by ingest and every operator command.
//! * [`batch`]: when buffered rows become one Delta commit (pure flush policy).
//! * [`produce`]: synthetic, realistic Pix traffic (and its sinks: Kafka or a JSON-lines file).
//! * [`sink`]: Delta Lake tables, each commit carrying its Kafka offsets (`txn` actions).
//! * [`deadletter`]: the DLQ topic (rejected records with the reason in headers).
//! * [`fault`]: whether retrying can cure a failure (transient) or it needs the operator.
//! * [`ingest`]: the exactly-once engine — consumers, micro-batches, Delta commits, rebalances.
//! * [`ops`]: operator commands over the tables and topics (`status`).
//! * [`telemetry`]: Prometheus metrics, the /metrics /healthz /readyz listener, masked logs.
//! * [`probe`]: named points on the commit path where crash tests kill the process.
//! * [`webhook`]: a source — the API Pix webhook (`pixlake webhook`) publishing to the topics.
//! * [`shiplog`]: a source — core-banking JSON-lines logs followed like `tail -F` (`ship-log`).
//! * [`cli`]: one module per subcommand; `main.rs` only dispatches.

pub mod batch;
pub mod cli;
pub mod config;
pub mod deadletter;
pub mod fault;
pub mod ingest;
pub mod kafka;
pub mod offsets;
pub mod ops;
pub mod pix;
pub mod probe;
pub mod produce;
pub mod shiplog;
pub mod sink;
pub mod telemetry;
pub mod webhook;
