//! `pixlake maintain`: compaction, checkpoint and vacuum of the pipelines' tables and
//! `pix_quarantine` (see [`crate::sink::delta::maintain`] for why each is safe beside `ingest`).

use crate::config::Config;
use crate::pix::batch::QUARANTINE_TABLE;
use crate::sink::delta::{Maintained, SinkError, Upkeep, maintain};
use crate::telemetry::progress::Progress;

/// Why maintenance stopped.
#[derive(Debug, thiserror::Error)]
pub enum MaintainError {
    #[error(transparent)]
    Table(#[from] Box<SinkError>),
    #[error(transparent)]
    Scope(#[from] crate::config::UnknownName),
    #[error(transparent)]
    Source(#[from] super::source::SourceError),
}

/// Maintains the tables of `pipelines` (all when empty) and `pix_quarantine`, one after another.
pub fn run(
    config: &Config,
    pipelines: &[String],
    upkeep: Upkeep,
    progress: &dyn Progress,
) -> Result<Vec<Maintained>, MaintainError> {
    let rt = super::source::runtime()?;
    let mut tables: Vec<&str> = config.select(pipelines)?.into_iter().map(|p| p.table.as_str()).collect();
    tables.push(QUARANTINE_TABLE);
    let mut out = Vec::new();
    for t in tables {
        let url = super::source::location(config, t)?;
        out.push(rt.block_on(maintain(t, &url, upkeep, progress)).map_err(Box::new)?);
    }
    Ok(out)
}
