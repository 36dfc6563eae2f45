//! Synthetic Pix traffic for load tests, demos and model training: a deterministic
//! [`Generator`] of realistic events (valid, fraudulent and deliberately invalid) and the
//! [`sink`]s it writes to — Kafka (acknowledged) or a JSON-lines file.

pub mod corrupt;
pub mod generator;
pub mod people;
pub mod sink;
pub mod wire;

pub use generator::{FraudPattern, Generator, Record, Settings};
