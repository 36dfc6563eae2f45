//! Outputs: the Delta Lake tables (`delta`). Dead letters and the engine that drives these come
//! with the ingest engine.

pub mod delta;
