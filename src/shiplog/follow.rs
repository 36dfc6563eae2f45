//! Following log files the way `tail -F` does: by file identity (device and inode), not name.
//!
//! - **New files** matching the patterns are picked up at each poll, read from their start.
//! - **Rotation by rename** (`app.log` → `app.log.1`, a new `app.log`): the renamed file is still
//!   open and read to its end; the new file under the name is a new identity, read from its start.
//! - **Copy-truncate** (the file copied away, then truncated in place): seen as a file shorter
//!   than the position reached, or whose first bytes changed; reading starts over at 0. Lines
//!   written between the copy and the truncation are in the copy only — a known limit of
//!   copy-truncate rotation for every shipper; prefer rotation by rename.
//! - **Positions** are byte offsets after the last complete line (a line being written, without
//!   its newline yet, waits). With each position goes a fingerprint of the file's first bytes,
//!   so that a new file reusing a deleted file's inode is not resumed at the old offset.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How many first bytes of a file identify its content.
const HEAD: u64 = 64;
/// Bytes read per file per poll at most.
const READ_CHUNK: usize = 1 << 20;

/// A file's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// Where reading a file stands: what a checkpoint keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub id: FileId,
    /// The name it was last seen under (for messages and the DLQ headers).
    pub path: PathBuf,
    /// Byte offset after the last complete line taken.
    pub offset: u64,
    /// Lines taken so far (the next line's number is `line + 1`).
    pub line: u64,
    /// FNV-1a of the first `head_len` bytes.
    pub head_hash: u64,
    pub head_len: u64,
}

/// One complete line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub id: FileId,
    pub path: PathBuf,
    /// 1-based line number in the file (since its last truncation).
    pub number: u64,
    /// Byte offset of the line's start.
    pub offset: u64,
    /// Without the newline (a trailing `\r` removed too).
    pub bytes: Vec<u8>,
}

/// Why following failed.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("`{pattern}` is not a valid file pattern; use * and ? in names, e.g. /var/log/core/*.jsonl")]
    Pattern {
        pattern: String,
        #[source]
        source: glob::PatternError,
    },
    #[error("cannot read {path}; check that pixlake may read it")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

struct Followed {
    pos: Position,
    file: File,
    /// Bytes read past `pos.offset` that do not end a line yet.
    partial: Vec<u8>,
    /// The name now points to another file (renamed away, or deleted): drop it at its end.
    detached: bool,
}

/// The files being followed.
pub struct Follower {
    patterns: Vec<glob::Pattern>,
    /// In the order they were found: a rotated file before the one that replaced it.
    files: Vec<Followed>,
    /// Positions from a checkpoint, used when their file is found.
    resume: BTreeMap<FileId, Position>,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

fn head(file: &mut File, len: u64) -> std::io::Result<(u64, u64)> {
    let mut buf = vec![0; len.min(HEAD) as usize];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut buf)?;
    Ok((fnv1a(&buf), buf.len() as u64))
}

impl Follower {
    /// Follows the files matching `patterns`, resuming those in `checkpoint`.
    pub fn new(patterns: &[String], checkpoint: Vec<Position>) -> Result<Follower, FollowError> {
        let patterns = patterns
            .iter()
            .map(|p| glob::Pattern::new(p).map_err(|source| FollowError::Pattern { pattern: p.clone(), source }))
            .collect::<Result<_, _>>()?;
        Ok(Follower { patterns, files: Vec::new(), resume: checkpoint.into_iter().map(|p| (p.id, p)).collect() })
    }

    /// The positions of every followed file (and of checkpointed ones not found yet), for the
    /// checkpoint. Call after every line handed out was acknowledged.
    pub fn positions(&self) -> Vec<Position> {
        let mut out: Vec<Position> = self.files.iter().map(|f| f.pos.clone()).collect();
        // Before the first poll: the checkpoint as it was.
        out.extend(self.resume.values().cloned());
        out
    }

    /// How many files are open.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file is open.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Up to `max` complete lines from every file, oldest file first; advances the positions
    /// past them (see [`Follower::positions`]).
    pub fn poll(&mut self, max: usize) -> Result<Vec<Line>, FollowError> {
        self.discover()?;
        let mut lines = Vec::new();
        let mut i = 0;
        while i < self.files.len() && lines.len() < max {
            let f = &mut self.files[i];
            let at_end = read_lines(f, max - lines.len(), &mut lines)
                .map_err(|source| FollowError::Read { path: f.pos.path.clone(), source })?;
            if at_end && f.detached && f.partial.is_empty() {
                tracing::info!(path = %f.pos.path.display(), lines = f.pos.line, "ship-log: rotated file read to its end");
                self.files.remove(i);
            } else {
                i += 1;
            }
        }
        Ok(lines)
    }

    /// Opens new matching files; notices renames and truncations.
    fn discover(&mut self) -> Result<(), FollowError> {
        let mut seen = BTreeMap::new();
        for pattern in &self.patterns {
            let paths = glob::glob_with(pattern.as_str(), glob::MatchOptions::new())
                .map_err(|source| FollowError::Pattern { pattern: pattern.as_str().to_owned(), source })?;
            for path in paths.flatten() {
                let Ok(meta) = std::fs::metadata(&path) else { continue };
                if meta.is_file() {
                    seen.insert(FileId { dev: meta.dev(), ino: meta.ino() }, path);
                }
            }
        }
        for f in &mut self.files {
            match seen.get(&f.pos.id) {
                Some(path) => f.pos.path.clone_from(path),
                None => f.detached = true,
            }
        }
        for (id, path) in seen {
            if self.files.iter().any(|f| f.pos.id == id) {
                continue;
            }
            let mut file = File::open(&path).map_err(|source| FollowError::Read { path: path.clone(), source })?;
            let len = file.metadata().map_err(|source| FollowError::Read { path: path.clone(), source })?.len();
            let mut pos = Position { id, path: path.clone(), offset: 0, line: 0, head_hash: 0, head_len: 0 };
            if let Some(saved) = self.resume.remove(&id) {
                let same = len >= saved.offset
                    && (saved.head_len == 0
                        || (len >= saved.head_len
                            && head(&mut file, saved.head_len).is_ok_and(|(h, _)| h == saved.head_hash)));
                if same {
                    pos = Position { path: path.clone(), ..saved };
                } else {
                    tracing::info!(path = %path.display(), "ship-log: file changed since the checkpoint (truncated or replaced); reading it from the start");
                }
            }
            tracing::info!(path = %path.display(), offset = pos.offset, "ship-log: following");
            self.files.push(Followed { pos, file, partial: Vec::new(), detached: false });
        }
        // Checkpointed files not found at the first look are gone (deleted after rotation):
        // forgotten, so the checkpoint does not grow forever.
        for (_, gone) in std::mem::take(&mut self.resume) {
            tracing::info!(path = %gone.path.display(), "ship-log: a checkpointed file is gone; forgetting it");
        }
        Ok(())
    }
}

/// Reads complete lines of `f` into `out` (at most `max`); whether the file's end was reached.
fn read_lines(f: &mut Followed, max: usize, out: &mut Vec<Line>) -> std::io::Result<bool> {
    let len = f.file.metadata()?.len();
    let read_to = f.pos.offset + f.partial.len() as u64;
    // Copy-truncate: shorter than what was read, or other first bytes than those fingerprinted.
    let rewritten =
        f.pos.head_len > 0 && len >= f.pos.head_len && head(&mut f.file, f.pos.head_len)?.0 != f.pos.head_hash;
    if len < read_to || rewritten {
        tracing::info!(path = %f.pos.path.display(), "ship-log: file truncated (copy-truncate rotation); reading it from the start");
        f.pos.offset = 0;
        f.pos.line = 0;
        f.pos.head_len = 0;
        f.partial.clear();
    }
    let read_to = f.pos.offset + f.partial.len() as u64;
    if len > read_to {
        f.file.seek(SeekFrom::Start(read_to))?;
        let want = ((len - read_to) as usize).min(READ_CHUNK);
        let start = f.partial.len();
        f.partial.resize(start + want, 0);
        let n = f.file.read(&mut f.partial[start..])?;
        f.partial.truncate(start + n);
    }
    if f.pos.head_len < HEAD && f.pos.offset + f.partial.len() as u64 > f.pos.head_len {
        let known = (f.pos.offset + f.partial.len() as u64).min(HEAD);
        let (h, l) = head(&mut f.file, known)?;
        f.pos.head_hash = h;
        f.pos.head_len = l;
    }
    let mut taken = 0;
    let mut consumed = 0;
    while taken < max {
        let Some(nl) = f.partial[consumed..].iter().position(|&b| b == b'\n') else { break };
        let mut bytes = &f.partial[consumed..consumed + nl];
        if bytes.last() == Some(&b'\r') {
            bytes = &bytes[..bytes.len() - 1];
        }
        f.pos.line += 1;
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            out.push(Line {
                id: f.pos.id,
                path: f.pos.path.clone(),
                number: f.pos.line,
                offset: f.pos.offset + consumed as u64,
                bytes: bytes.to_vec(),
            });
            taken += 1;
        }
        consumed += nl + 1;
    }
    f.partial.drain(..consumed);
    f.pos.offset += consumed as u64;
    Ok(len <= f.pos.offset + f.partial.len() as u64 && taken < max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::Path;

    fn append(path: &Path, lines: &[&str]) {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        for l in lines {
            writeln!(f, "{l}").unwrap();
        }
    }

    fn texts(lines: &[Line]) -> Vec<String> {
        lines.iter().map(|l| String::from_utf8(l.bytes.clone()).unwrap()).collect()
    }

    #[test]
    fn follows_appends_rename_rotation_copy_truncate_and_new_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("core.jsonl");
        let pattern = format!("{}/*.jsonl", dir.path().display());
        let mut f = Follower::new(std::slice::from_ref(&pattern), Vec::new()).unwrap();
        append(&log, &["a1", "a2"]);
        assert_eq!(texts(&f.poll(100).unwrap()), ["a1", "a2"]);
        // A line being written waits for its newline.
        std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"a3-part").unwrap();
        assert!(f.poll(100).unwrap().is_empty());
        std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"ial\n").unwrap();
        assert_eq!(texts(&f.poll(100).unwrap()), ["a3-partial"]);
        // Rename rotation: the old file's late lines, then the new file's.
        let rotated = dir.path().join("core.jsonl.1");
        std::fs::rename(&log, &rotated).unwrap();
        append(&rotated, &["a4"]);
        append(&log, &["b1"]);
        let got = f.poll(100).unwrap();
        assert_eq!(texts(&got), ["a4", "b1"], "the rotated file first, then the new one");
        assert_eq!(got[1].number, 1);
        assert_eq!(f.len(), 1, "the rotated file is dropped once read to its end");
        // Copy-truncate: the file starts over.
        std::fs::copy(&log, dir.path().join("core.jsonl.2")).unwrap();
        std::fs::File::create(&log).unwrap();
        append(&log, &["c1", "c2-longer-than-b1"]);
        assert_eq!(texts(&f.poll(100).unwrap()), ["c1", "c2-longer-than-b1"]);
        // A new file matching the pattern.
        append(&dir.path().join("other.jsonl"), &["d1"]);
        assert_eq!(texts(&f.poll(100).unwrap()), ["d1"]);
        // `max` bounds a poll; the rest comes next time.
        append(&log, &["e1", "e2", "e3"]);
        assert_eq!(texts(&f.poll(2).unwrap()), ["e1", "e2"]);
        assert_eq!(texts(&f.poll(2).unwrap()), ["e3"]);
    }

    #[test]
    fn resumes_from_a_checkpoint_unless_the_file_was_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("core.jsonl");
        let pattern = format!("{}/*.jsonl", dir.path().display());
        append(&log, &["first-line-of-the-file", "x2"]);
        let mut f = Follower::new(std::slice::from_ref(&pattern), Vec::new()).unwrap();
        assert_eq!(f.poll(1).unwrap().len(), 1);
        let saved = f.positions();
        append(&log, &["x3"]);
        let mut again = Follower::new(std::slice::from_ref(&pattern), saved.clone()).unwrap();
        let lines = again.poll(100).unwrap();
        assert_eq!(texts(&lines), ["x2", "x3"]);
        assert_eq!(lines[0].number, 2);
        // Replaced in place with other content (same inode): from the start.
        std::fs::write(&log, "other-content-entirely-different\ny2\n").unwrap();
        let mut replaced = Follower::new(&[pattern], saved).unwrap();
        assert_eq!(texts(&replaced.poll(100).unwrap()), ["other-content-entirely-different", "y2"]);
    }
}
