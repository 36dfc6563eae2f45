//! What pixlake tells the people running it: Prometheus metrics ([`metrics`]), the HTTP
//! listener serving them with health and readiness ([`server`]), log lines in human or JSON
//! format ([`logging`]) with personal data masked ([`mask`]), and the freshness measurement
//! ([`freshness`]), how an error and its causes are told ([`chain`]), and how far a long command
//! has got ([`progress`]).

pub mod chain;
pub mod freshness;
pub mod logging;
pub mod mask;
pub mod metrics;
pub mod progress;
pub mod server;

pub use chain::Chain;
pub use metrics::{Metrics, MetricsError, PartitionMetrics, PermanentFailures, PipelineMetrics, TableMetrics};
