//! The memory bound: `ingest.memory_limit_mb` divided into what each pipeline may hold.
//!
//! What a pipeline holds, besides its fixed part ([`PIPELINE_BASE`]: the consumer and DLQ
//! producer, the two table writers' state, the Arrow builders' reserve):
//!
//! * librdkafka's prefetch: records fetched ahead of the poll loop, bounded per consumer by
//!   `queued.max.messages.kbytes` (and one fetch response by `fetch.max.bytes`);
//! * the batch being read: its Arrow builders (and the raw values of rejected records), which
//!   `batch.max_bytes` bounds through the record values it counts;
//! * the batch being committed (one at most: see [`super::committer`]): its arrays, the copies
//!   delta-rs's writer makes to split it by date partition, the column encoders' buffers and the
//!   Parquet files, encoded in memory before the upload.
//!
//! Once committed, a batch's arrays are not freed but handed back as the builders of the batch
//! after next ([`crate::pix::reserve`]), so these two sets of buffers are also what a pipeline
//! keeps between batches: each as large as recent batches needed (a buffer over four times what
//! its batch used is freed rather than reused, and a table with no rows at a seal drops its
//! set), which `batch.max_bytes` bounds as above. The category table and `pix_quarantine` keep
//! theirs apart while `batch.max_bytes` counts the record values of both together; a batch of
//! nothing but rejections after one of valid records (or the reverse) does not leave both at
//! full size, because the table without rows drops its set at that seal.
//!
//! Measured on the generator's mix with a warehouse slowed down so that both batches are always
//! held (`tests/ingest_backpressure.rs`; the README has the figures), the two batches together
//! cost up to ten times the record values of one: the builders grow by doubling, the batch being
//! committed exists about three times over while it is encoded, and the allocator keeps some of
//! what was freed. So with `S` = (limit − [`PROCESS_BASE`]) / pipelines − [`PIPELINE_BASE`], a
//! pipeline's batches are `S / 16` of record values and its prefetch `S / 20`:
//! `10 × S/16 + S/20 ≈ 0.68 S`, the rest a margin (the test's peak varies by about 10 % from run
//! to run). A configured `batch.max_bytes` below that is kept.
//!
//! The limit is on by default (512 MiB, raised to what the pipelines need when there are more
//! than six): smaller batches mean more commits, and with one batch in flight per pipeline a
//! batch that fills faster than the previous one commits leaves the poll loop waiting on the
//! committer, so a tight limit costs some throughput (about a tenth at 512 MiB on the bench
//! machine; the README has the trade-off measured). With `ingest.memory_limit_mb: 0`,
//! `batch.max_bytes` and librdkafka's defaults apply as configured.

/// What the process needs besides its pipelines: the runtime, the metrics, the code.
pub const PROCESS_BASE: u64 = 128 << 20;

/// What a pipeline holds before it reads anything.
pub const PIPELINE_BASE: u64 = 40 << 20;

use crate::batch::FlushPolicy;
use crate::config::{Config, MemoryLimit};

/// The smallest prefetch and batch (bytes): below, every record would be a fetch and a commit.
const FLOOR: u64 = 1 << 20;

/// Largest fetch response asked for (librdkafka's default `fetch.max.bytes`).
const FETCH_MAX: u64 = 50 << 20;

/// The limit is below what `pipelines` pipelines need to work at all.
#[derive(Debug, thiserror::Error)]
#[error(
    "ingest.memory_limit_mb = {limit_mb} is too small for {pipelines} pipelines: give at least {needed_mb} MiB, \
     or run fewer pipelines per process (--pipeline)"
)]
pub struct TooSmall {
    pub limit_mb: u64,
    pub pipelines: usize,
    pub needed_mb: u64,
}

/// What one pipeline may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// `batch.max_bytes` in effect.
    pub batch_bytes: usize,
    /// The consumer's `queued.max.messages.kbytes`.
    pub prefetch_kbytes: u64,
    /// The consumer's `fetch.max.bytes`.
    pub fetch_max_bytes: u64,
}

/// The limit in effect for `pipelines` pipelines and each one's budget (`None`: no limit). A
/// configured limit too small for them is refused; the default one is raised to what they need.
pub fn effective(
    limit: MemoryLimit,
    pipelines: usize,
    batch_max_bytes: usize,
) -> Result<Option<(u64, Budget)>, TooSmall> {
    let Some(bytes) = limit.bytes() else { return Ok(None) };
    match Budget::of(bytes, pipelines, batch_max_bytes) {
        Ok(budget) => Ok(Some((bytes, budget))),
        Err(too_small) if limit.is_default() => {
            let needed = too_small.needed_mb << 20;
            Budget::of(needed, pipelines, batch_max_bytes).map(|b| Some((needed, b)))
        }
        Err(too_small) => Err(too_small),
    }
}

impl Budget {
    /// Each of `pipelines` pipelines' share of `limit` bytes, with `batch.max_bytes` =
    /// `batch_max_bytes` configured.
    pub fn of(limit: u64, pipelines: usize, batch_max_bytes: usize) -> Result<Budget, TooSmall> {
        let n = pipelines.max(1) as u64;
        let needed = PROCESS_BASE + n * (PIPELINE_BASE + 16 * FLOOR);
        if limit < needed {
            return Err(TooSmall { limit_mb: limit >> 20, pipelines, needed_mb: needed.div_ceil(1 << 20) });
        }
        let share = (limit - PROCESS_BASE) / n - PIPELINE_BASE;
        let prefetch = (share / 20).max(FLOOR);
        let batch = (share / 16).max(FLOOR).min(batch_max_bytes as u64);
        Ok(Budget {
            batch_bytes: usize::try_from(batch).unwrap_or(usize::MAX),
            prefetch_kbytes: prefetch / 1024,
            fetch_max_bytes: prefetch.min(FETCH_MAX),
        })
    }

    /// `config` with this budget in effect: `batch.max_bytes` lowered to it, the consumers'
    /// prefetch settings set to it unless `kafka.consumer` sets them. librdkafka refuses a
    /// `fetch.max.bytes` below `message.max.bytes`: a larger one configured raises it.
    pub fn apply(&self, config: &Config) -> Config {
        let mut config = config.clone();
        config.batch.max_bytes = config.batch.max_bytes.min(self.batch_bytes);
        let kafka = &mut config.kafka;
        let message_max = kafka
            .consumer
            .get("message.max.bytes")
            .or_else(|| kafka.properties.get("message.max.bytes"))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let fetch = self.fetch_max_bytes.max(message_max);
        kafka.consumer.entry("queued.max.messages.kbytes".into()).or_insert_with(|| self.prefetch_kbytes.to_string());
        kafka.consumer.entry("fetch.max.bytes".into()).or_insert_with(|| fetch.to_string());
        config
    }
}

/// Rows to reserve in a pipeline's Arrow builders: what a full batch of average records needs
/// (the generator's records average 690 bytes; 512 leaves room for smaller ones), at most 65 536
/// (a larger batch grows them).
pub fn builder_rows(policy: &FlushPolicy) -> usize {
    policy.max_rows.min(1 << 16).min(policy.max_bytes / 512).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_default_limit_over_three_pipelines() {
        let b = Budget::of(512 << 20, 3, 64 << 20).unwrap();
        // (512 - 128) / 3 - 40 = 88 MiB each: batches of 5.5 MiB of records, 4.4 MiB prefetched.
        assert_eq!(b.batch_bytes, (88 << 20) / 16);
        assert_eq!(b.prefetch_kbytes, 88 * 1024 / 20);
        assert_eq!(b.fetch_max_bytes, (88 << 20) / 20);
        let mut config = Config::from_yaml("kafka: {consumer: {fetch.max.bytes: 1048576}}", "test", []).unwrap();
        config.ingest.memory_limit = MemoryLimit::Set(512 << 20);
        let applied = b.apply(&config);
        assert_eq!(applied.batch.max_bytes, b.batch_bytes);
        assert_eq!(builder_rows(&applied.batch), 11_264);
        assert_eq!(applied.kafka.consumer["queued.max.messages.kbytes"], (88 * 1024 / 20).to_string());
        assert_eq!(applied.kafka.consumer["fetch.max.bytes"], "1048576", "what kafka.consumer sets wins");
        let big = Config::from_yaml("kafka: {properties: {message.max.bytes: 33554432}}", "test", []).unwrap();
        assert_eq!(b.apply(&big).kafka.consumer["fetch.max.bytes"], "33554432", "never below message.max.bytes");
        assert_eq!(
            Budget::of(512 << 20, 3, 4 << 20).unwrap().batch_bytes,
            4 << 20,
            "a smaller batch.max_bytes is kept"
        );
        let small = Budget::of(256 << 20, 3, 64 << 20).unwrap_err();
        assert_eq!((small.needed_mb, small.to_string().contains("--pipeline")), (296, true));
    }

    #[test]
    fn the_default_limit_is_on_and_grows_with_the_pipelines_where_a_configured_one_refuses() {
        let config = Config::from_yaml("", "test", []).unwrap();
        assert_eq!(config.ingest.memory_limit, MemoryLimit::Default(512 << 20));
        let none = Config::from_yaml("ingest: {memory_limit_mb: 0}", "test", []).unwrap();
        assert_eq!(none.ingest.memory_limit, MemoryLimit::Off);
        let set = Config::from_yaml("ingest: {memory_limit_mb: 1024}", "test", []).unwrap();
        assert_eq!(set.ingest.memory_limit, MemoryLimit::Set(1024 << 20));
        assert_eq!(effective(MemoryLimit::Off, 3, 64 << 20).unwrap(), None);
        let (limit, _) = effective(MemoryLimit::Default(512 << 20), 3, 64 << 20).unwrap().unwrap();
        assert_eq!(limit, 512 << 20);
        // Eight pipelines need 128 + 8 × 56 = 576 MiB: the default gives them that…
        let (limit, budget) = effective(MemoryLimit::Default(512 << 20), 8, 64 << 20).unwrap().unwrap();
        assert_eq!(limit, 576 << 20);
        assert_eq!(Some(budget), Budget::of(576 << 20, 8, 64 << 20).ok());
        // …a configured 512 is refused with what to do.
        assert_eq!(effective(MemoryLimit::Set(512 << 20), 8, 64 << 20).unwrap_err().needed_mb, 576);
    }

    proptest! {
        #[test]
        fn what_a_pipeline_holds_stays_within_its_share(limit_mb in 128u64..65_536, pipelines in 1usize..16) {
            let limit = limit_mb << 20;
            let Ok(b) = Budget::of(limit, pipelines, usize::MAX) else {
                prop_assert!(limit < PROCESS_BASE + pipelines as u64 * (PIPELINE_BASE + (16 << 20)));
                return Ok(());
            };
            let share = (limit - PROCESS_BASE) / pipelines as u64 - PIPELINE_BASE;
            let held = b.prefetch_kbytes * 1024 + 10 * b.batch_bytes as u64;
            prop_assume!(share / 20 >= FLOOR);
            prop_assert!(held <= share * 69 / 100, "{held} of {share}");
            let total = PROCESS_BASE + pipelines as u64 * (PIPELINE_BASE + held);
            prop_assert!(total <= limit, "{total} over {limit}");
            prop_assert!(b.fetch_max_bytes <= b.prefetch_kbytes * 1024 + 1024 && b.fetch_max_bytes >= FLOOR);
        }
    }
}
