//! Delta Lake output: one table per pipeline plus `pix_quarantine`, written so that the Kafka
//! offsets live in the same commit as the rows they cover.
//!
//! # The exactly-once argument (the part kept here)
//!
//! Every commit pixlake makes to a table carries, next to its `add` actions, one `txn` action per
//! source partition whose rows it adds: `appId = pixlake:{pipeline}:{topic}:{partition}` (the
//! quarantine table uses `pixlake:{pipeline}:quarantine:{topic}:{partition}`), `version` = the
//! **next offset to read** (the last offset covered + 1). A Delta commit is atomic, so after any
//! crash the table either has the rows *and* the offset, or neither; restarting from the `txn`
//! version re-reads exactly what is missing.
//!
//! Two writers for one partition (a zombie after a rebalance) are fenced by Delta's conflict
//! check: a commit that finds a concurrent commit carrying one of its own app ids fails with
//! `ConcurrentTransaction` instead of retrying ([`CommitOutcome::Fenced`]). That only protects
//! a writer that learnt its offsets from the table, then advanced the table *only through its
//! own commits* — [`DeltaTableWriter`] never refreshes to the latest version behind the caller's
//! back (delta-rs #3821) — **and** whose every commit carries a txn for every partition it owns:
//! moving to its own new version absorbs the commits in between, so a partition left out of a
//! commit could have been written by another writer unnoticed. A negative txn version declares
//! "owned, nothing committed yet" and reads back as no offset ([`crate::offsets::offset`]).
//! Offsets are read back in one place, [`read_offsets`].

mod append;
mod checkpoint;
mod datafiles;
mod files;
mod inspect;
mod location;
mod maintain;
mod offsets;
mod rewind;
mod scan;
mod table;

pub use files::{layout, open_existing, reachable};
pub use inspect::{TableInfo, chosen_gaps, inspect};
pub use location::Location;
pub use maintain::{Maintained, Upkeep, maintain};
pub use offsets::{LatestOffsets, Loaded, read_offsets, written_offsets};
pub use rewind::{Cut, RewindError, Rewound, delete_rows, rewind};
pub use scan::{Coordinates, SMALL_ROWS, TableBatches, TableRows, coordinates, scan};

pub use table::{CommitOutcome, DeltaTableWriter, SinkError};
