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

/// The committed offsets of `partitions` of the pipeline `ids` belongs to, as its writers see
/// them: from the category table's and `pix_quarantine`'s `txn` actions at each writer's version
/// (after a [`super::DeltaTableWriter::refresh`], the latest). Keyed by partition; every
/// partition asked for is present.
pub async fn written_offsets(
    ids: AppIds<'_>,
    partitions: &[i32],
    writers: [(Table, Option<&super::DeltaTableWriter>); 2],
) -> Result<PartitionOffsets, SinkError> {
    let mut out: PartitionOffsets = partitions.iter().map(|&p| (p, CommittedOffsets::default())).collect();
    for (kind, writer) in writers {
        let Some(writer) = writer else { continue };
        let apps: Vec<String> = partitions.iter().map(|&p| ids.of(kind, p)).collect();
        for (p, version) in partitions.iter().zip(writer.txn_versions(&apps).await?) {
            if let (Some(o), Some(committed)) = (offset(version), out.get_mut(p)) {
                committed.set(kind, o);
            }
        }
    }
    Ok(out)
}

/// One table followed read-only at its latest version, with the latest `txn` version of the app
/// ids asked for so far.
///
/// A `txn` lookup through delta-rs replays the log back to the last checkpoint (up to 100 commit
/// files, each a GET on S3) for every app id, every time. Following a table every few seconds
/// that way costs more the longer the log gets since its checkpoint. So each app id is looked
/// up once, in full, the first time it is asked for; after that only the commits the table
/// gained since the last read are read (one GET each on S3) and their `txn` actions applied.
struct Followed {
    name: String,
    at: Location,
    table: Option<DeltaTable>,
    /// Latest txn version per app id looked up (absent: none yet).
    txns: std::collections::HashMap<String, i64>,
    /// App ids looked up in full.
    known: std::collections::HashSet<String>,
    /// The version the map is up to date with.
    read_up_to: Option<u64>,
    /// The table's id (from its metadata) when the map was built: another id is another table
    /// (deleted and created again), whose log is not a continuation of what was read.
    table_id: Option<String>,
}

impl Followed {
    fn new(name: &str, at: Location) -> Self {
        Followed {
            name: name.to_owned(),
            at,
            table: None,
            txns: Default::default(),
            known: Default::default(),
            read_up_to: None,
            table_id: None,
        }
    }

    /// Forgets every txn read: the next read looks every app id up in full.
    fn start_over(&mut self) {
        self.known.clear();
        self.txns.clear();
        self.read_up_to = None;
    }

    /// The latest txn version of each of `wanted` (absent: none), the table moved to its latest
    /// version first.
    async fn latest(&mut self, wanted: &[String]) -> Result<&std::collections::HashMap<String, i64>, SinkError> {
        let err = SinkError::delta(&self.name, "refresh");
        let id = |t: &DeltaTable| t.snapshot().ok().map(|s| s.metadata().id().to_owned());
        match &mut self.table {
            Some(t) => {
                if let Err(e) = t.update_incremental(None).await {
                    // A table deleted and created again can have a shorter log than the one
                    // followed: what is there now is read afresh; anything else is an error.
                    match super::files::open_existing(&self.name, &self.at).await {
                        Ok(Some(now)) if id(&now) != self.table_id => {
                            self.start_over();
                            self.table_id = None;
                            self.table = Some(now);
                        }
                        _ => return Err(err(e)),
                    }
                }
            }
            None => self.table = super::files::open_existing(&self.name, &self.at).await?,
        }
        if let Some(t) = &self.table
            && self.table_id.is_some()
            && id(t) != self.table_id
        {
            // Another table at this place: read it afresh.
            self.start_over();
            self.table = super::files::open_existing(&self.name, &self.at).await?;
        }
        let Some(table) = &self.table else { return Ok(&self.txns) };
        self.table_id = id(table);
        let now = table.version().unwrap_or(0);
        let err = SinkError::delta(&self.name, "read the offsets in");
        // The commits since the last read, oldest first (the newest txn of an app id wins). A
        // commit file that is gone (cleaned up) or that does not parse: start over. Any other
        // failure (the store throttling, a timeout) is an error: the map stays as it was.
        if let Some(seen) = self.read_up_to.filter(|&seen| seen <= now) {
            let store = table.log_store().object_store(None);
            let log = table.log_store().log_path().clone();
            let mut read = Vec::new();
            let mut whole = true;
            for version in seen + 1..=now {
                use deltalake::logstore::object_store::ObjectStoreExt;
                let file = log.clone().join(format!("{version:020}.json"));
                let txns = match store.get(&file).await {
                    Ok(got) => txn_actions(&got.bytes().await.map_err(|e| err(DeltaTableError::from(e)))?),
                    Err(deltalake::ObjectStoreError::NotFound { .. }) => None,
                    Err(e) => return Err(err(DeltaTableError::from(e))),
                };
                match txns {
                    Some(t) => read.extend(t),
                    None => {
                        whole = false;
                        break;
                    }
                }
            }
            if whole {
                for (app, v) in read {
                    if self.known.contains(&app) {
                        self.txns.insert(app, v);
                    }
                }
            } else {
                self.known.clear();
                self.txns.clear();
            }
        } else {
            self.known.clear();
            self.txns.clear();
        }
        // App ids never looked up (or after starting over): in full, once.
        let snapshot = table.snapshot().map_err(err)?;
        let log_store = table.log_store();
        let unknown: Vec<&String> = wanted.iter().filter(|a| !self.known.contains(*a)).collect();
        for app in unknown {
            if let Some(v) = snapshot.transaction_version(log_store.as_ref(), app).await.map_err(err)? {
                self.txns.insert(app.clone(), v);
            }
            self.known.insert(app.clone());
        }
        self.read_up_to = Some(now);
        Ok(&self.txns)
    }
}

/// The `(appId, version)` of every `txn` action in one commit file (newline-delimited JSON);
/// `None` when a line that holds one does not parse.
fn txn_actions(commit: &[u8]) -> Option<Vec<(String, i64)>> {
    #[derive(serde::Deserialize)]
    struct Line {
        txn: Option<Txn>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Txn {
        app_id: String,
        version: i64,
    }
    let mut out = Vec::new();
    for line in commit.split(|&b| b == b'\n').filter(|l| l.windows(6).any(|w| w == b"\"txn\":")) {
        if let Some(t) = serde_json::from_slice::<Line>(line).ok()?.txn {
            out.push((t.app_id, t.version));
        }
    }
    Some(out)
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
        LatestOffsets {
            category: Followed::new(category.0, category.1),
            quarantine: Followed::new(quarantine.0, quarantine.1),
        }
    }

    /// The latest committed offsets of `partitions`.
    pub async fn read(&mut self, ids: AppIds<'_>, partitions: &[i32]) -> Result<PartitionOffsets, SinkError> {
        let mut out: PartitionOffsets = partitions.iter().map(|&p| (p, CommittedOffsets::default())).collect();
        for (kind, followed) in [(Table::Category, &mut self.category), (Table::Quarantine, &mut self.quarantine)] {
            let wanted: Vec<String> = partitions.iter().map(|&p| ids.of(kind, p)).collect();
            let txns = followed.latest(&wanted).await?;
            for (&p, committed) in out.iter_mut() {
                if let Some(o) = offset(txns.get(&ids.of(kind, p)).copied()) {
                    committed.set(kind, o);
                }
            }
        }
        Ok(out)
    }
}

/// `DeltaTableError` for a table that has no version yet (kept here so the one reader and its
/// callers agree on what "no table" is).
pub(super) fn is_missing(e: &DeltaTableError) -> bool {
    matches!(e, DeltaTableError::NotATable(_) | DeltaTableError::InvalidTableLocation(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txn_actions_are_read_from_a_commit_file() {
        let commit = br#"{"commitInfo":{"timestamp":1,"operation":"WRITE"}}
{"txn":{"appId":"pixlake:payments:pix.payments:0","version":120}}
{"add":{"path":"part-0.parquet","size":1,"partitionValues":{},"modificationTime":1,"dataChange":true}}
{"txn":{"appId":"pixlake:payments:pix.payments:1","version":-1,"lastUpdated":null}}
"#;
        assert_eq!(
            txn_actions(commit),
            Some(vec![
                ("pixlake:payments:pix.payments:0".to_owned(), 120),
                ("pixlake:payments:pix.payments:1".to_owned(), -1)
            ])
        );
        assert_eq!(txn_actions(br#"{"txn":{"appId":"x","version":"#), None, "a txn line that does not parse");
    }
}
