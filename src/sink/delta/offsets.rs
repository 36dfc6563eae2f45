//! The one reader of committed offsets: a pipeline's partitions, from the `txn` actions of its
//! two tables at the versions the caller loaded ([`read_offsets`]), and a read-only pair of
//! tables that follows their latest versions ([`LatestOffsets`], for `--until-caught-up`
//! watching partitions another member writes).

use super::{Location, SinkError};
use crate::offsets::{AppIds, CommittedOffsets, PartitionOffsets, Table, offset};
use deltalake::{DeltaTable, DeltaTableError};

/// A table as loaded at one version, by name (`table` `None`: there is no table there yet, so
/// no offset either).
#[derive(Clone, Copy)]
pub struct Loaded<'a> {
    pub name: &'a str,
    pub table: Option<&'a DeltaTable>,
}

/// The committed offsets of `partitions` of the pipeline `ids` belongs to, read from its
/// category table and `pix_quarantine` as loaded — from one version of each, so a caller that
/// also reads the rows of those versions sees offsets and rows that agree. Keyed by partition;
/// every partition asked for is present.
///
/// Each lookup replays the log from the newest version back to the app id's latest `txn` (or to
/// the last checkpoint): call it on assignment or every few seconds, not per batch.
pub async fn read_offsets(
    ids: AppIds<'_>,
    partitions: &[i32],
    category: Loaded<'_>,
    quarantine: Loaded<'_>,
) -> Result<PartitionOffsets, SinkError> {
    let mut out: PartitionOffsets = partitions.iter().map(|&p| (p, CommittedOffsets::default())).collect();
    for (kind, loaded) in [(Table::Category, category), (Table::Quarantine, quarantine)] {
        let Some(table) = loaded.table else { continue };
        let err = SinkError::delta(loaded.name, "read the offsets in");
        let snapshot = table.snapshot().map_err(err)?;
        let log_store = table.log_store();
        for (&p, committed) in out.iter_mut() {
            let version = snapshot.transaction_version(log_store.as_ref(), ids.of(kind, p)).await.map_err(err)?;
            if let Some(o) = offset(version) {
                committed.set(kind, o);
            }
        }
    }
    Ok(out)
}

/// One table followed read-only at its latest version.
struct Followed {
    name: String,
    at: Location,
    table: Option<DeltaTable>,
}

impl Followed {
    async fn latest(&mut self) -> Result<Loaded<'_>, SinkError> {
        let err = SinkError::delta(&self.name, "refresh");
        match &mut self.table {
            Some(t) => t.update_incremental(None).await.map_err(err)?,
            None => self.table = super::files::open_existing(&self.name, &self.at).await?,
        }
        Ok(Loaded { name: &self.name, table: self.table.as_ref() })
    }
}

/// A pipeline's two tables opened read-only and moved to their latest versions at each read:
/// how a process learns what *other* writers committed. Never used to write — a writer's view
/// must advance only through its own commits, or the fence is lost (see
/// [`super::DeltaTableWriter`]).
pub struct LatestOffsets {
    category: Followed,
    quarantine: Followed,
}

impl LatestOffsets {
    /// Follows the category table `category` and `pix_quarantine` at `quarantine` (neither
    /// needs to exist yet).
    pub fn new(category: (&str, Location), quarantine: (&str, Location)) -> Self {
        let followed = |(name, at): (&str, Location)| Followed { name: name.to_owned(), at, table: None };
        LatestOffsets { category: followed(category), quarantine: followed(quarantine) }
    }

    /// The latest committed offsets of `partitions`.
    pub async fn read(&mut self, ids: AppIds<'_>, partitions: &[i32]) -> Result<PartitionOffsets, SinkError> {
        let category = self.category.latest().await?;
        let quarantine = self.quarantine.latest().await?;
        read_offsets(ids, partitions, category, quarantine).await
    }
}

/// `DeltaTableError` for a table that has no version yet (kept here so the one reader and its
/// callers agree on what "no table" is).
pub(super) fn is_missing(e: &DeltaTableError) -> bool {
    matches!(e, DeltaTableError::NotATable(_) | DeltaTableError::InvalidTableLocation(_))
}
