//! Micro-batching: when the rows buffered for a pipeline become one Delta commit.

pub mod policy;

pub use policy::{FlushPolicy, FlushReason};
