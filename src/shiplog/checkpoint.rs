//! The shipper's durable position: for each file (by identity), the offset after the last line
//! Kafka acknowledged. Written only after the acknowledgement of every line before it, by
//! replacing the file atomically (write a temporary file, fsync, rename, fsync the directory):
//! a crash leaves the old checkpoint or the new one, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::follow::Position;

/// Why the checkpoint cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(
        "cannot read the checkpoint {path}; check ship_log.checkpoint_path (delete the file to start over from the files' beginnings)"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the checkpoint {path} is not one pixlake wrote; check ship_log.checkpoint_path (delete the file to start over from the files' beginnings)"
    )]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write the checkpoint {path}; check the disk holding ship_log.checkpoint_path")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    files: Vec<Position>,
}

/// Loads the positions (none when the file does not exist yet).
pub fn load(path: &Path) -> Result<Vec<Position>, CheckpointError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(CheckpointError::Read { path: path.to_owned(), source }),
    };
    let stored: Stored =
        serde_json::from_slice(&text).map_err(|source| CheckpointError::Parse { path: path.to_owned(), source })?;
    Ok(stored.files)
}

/// Replaces the checkpoint with `positions`, durably.
pub fn save(path: &Path, positions: Vec<Position>) -> Result<(), CheckpointError> {
    let write = |source| CheckpointError::Write { path: path.to_owned(), source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(write)?;
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec(&Stored { version: 1, files: positions }).map_err(|e| write(e.into()))?;
    let mut f = std::fs::File::create(&tmp).map_err(write)?;
    f.write_all(&bytes).map_err(write)?;
    f.sync_all().map_err(write)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(write)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(write)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shiplog::follow::FileId;

    #[test]
    fn round_trips_and_refuses_what_it_did_not_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/ship-log.json");
        assert!(load(&path).unwrap().is_empty());
        let p = Position {
            id: FileId { dev: 1, ino: 2 },
            path: "/var/log/core.jsonl".into(),
            offset: 10,
            line: 3,
            head_hash: 7,
            head_len: 10,
        };
        save(&path, vec![p.clone()]).unwrap();
        assert_eq!(load(&path).unwrap(), vec![p]);
        std::fs::write(&path, "garbage").unwrap();
        assert!(matches!(load(&path), Err(CheckpointError::Parse { .. })));
    }
}
