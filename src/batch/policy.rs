//! The flush policy, pure: given what is buffered and the current time, say whether to commit
//! now. The clock is passed in, so every branch is unit-tested without waiting.
//!
//! A batch is committed when it reaches `max_rows` rows or `max_bytes` bytes of message values
//! (bounded memory), or when its oldest record has waited `max_latency` (freshness). The engine
//! also flushes on shutdown and before giving partitions away in a rebalance; those are its
//! decisions, not the policy's.

use std::time::Duration;

/// Limits of one micro-batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Most rows in one commit.
    pub max_rows: usize,
    /// Most bytes of message values buffered.
    pub max_bytes: usize,
    /// Longest a record waits before its batch is committed.
    pub max_latency: Duration,
}

/// Why a batch should be committed now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushReason {
    Rows,
    Bytes,
    Latency,
}

impl FlushReason {
    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FlushReason::Rows => "rows",
            FlushReason::Bytes => "bytes",
            FlushReason::Latency => "latency",
        }
    }
}

impl FlushPolicy {
    /// Whether a batch of `rows` rows and `bytes` bytes whose first record arrived `age` ago
    /// must be committed now; `None` while it may keep filling. An empty batch never flushes.
    pub fn check(&self, rows: usize, bytes: usize, age: Duration) -> Option<FlushReason> {
        if rows == 0 {
            None
        } else if rows >= self.max_rows {
            Some(FlushReason::Rows)
        } else if bytes >= self.max_bytes {
            Some(FlushReason::Bytes)
        } else if age >= self.max_latency {
            Some(FlushReason::Latency)
        } else {
            None
        }
    }

    /// How long the engine may wait for more records before checking again: the time left until
    /// the latency limit (zero when already due).
    pub fn time_left(&self, rows: usize, age: Duration) -> Duration {
        if rows == 0 { self.max_latency } else { self.max_latency.saturating_sub(age) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: FlushPolicy = FlushPolicy { max_rows: 100, max_bytes: 1000, max_latency: Duration::from_secs(5) };

    #[test]
    fn each_limit_flushes() {
        assert_eq!(P.check(0, 0, Duration::from_secs(60)), None, "nothing to commit");
        assert_eq!(P.check(99, 999, Duration::from_millis(4999)), None);
        assert_eq!(P.check(100, 10, Duration::ZERO), Some(FlushReason::Rows));
        assert_eq!(P.check(5, 1000, Duration::ZERO), Some(FlushReason::Bytes));
        assert_eq!(P.check(5, 10, Duration::from_secs(5)), Some(FlushReason::Latency));
        assert_eq!(P.time_left(5, Duration::from_secs(2)), Duration::from_secs(3));
        assert_eq!(P.time_left(5, Duration::from_secs(9)), Duration::ZERO);
        assert_eq!(P.time_left(0, Duration::from_secs(9)), Duration::from_secs(5));
    }

    proptest! {
        #[test]
        fn flushes_exactly_when_a_limit_is_reached(rows in 0usize..300, bytes in 0usize..3000, age_ms in 0u64..10_000) {
            let age = Duration::from_millis(age_ms);
            let due = rows > 0 && (rows >= P.max_rows || bytes >= P.max_bytes || age >= P.max_latency);
            prop_assert_eq!(P.check(rows, bytes, age).is_some(), due);
        }
    }
}
