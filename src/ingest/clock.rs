//! The engine's one reading of the clock per step, passed in rather than read inside: the flush
//! policy, the idle commits and the lag gauges all decide on the same `now`, and unit tests move
//! it forward at will.

use std::time::Instant;

use crate::pix::time::Micros;

/// One reading of both clocks.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic: batch ages, idle commits, deadlines.
    pub at: Instant,
    /// Wall clock, UTC microseconds: `ingest_time`, record ages (lag seconds).
    pub wall: Micros,
}

impl Now {
    /// Reads both clocks.
    pub fn read() -> Now {
        Now { at: Instant::now(), wall: wall_micros() }
    }
}

/// The wall clock, UTC microseconds.
pub fn wall_micros() -> Micros {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}
