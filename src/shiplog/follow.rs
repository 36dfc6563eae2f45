//! Following log files the way `tail -F` does: by file identity (device and inode), not name.
//!
//! - **New files** matching the patterns are picked up at each poll, read from their start
//!   (oldest modification time first).
//! - **Rotation by rename** (`app.log` → `app.log.1`, a new `app.log`): the renamed file stays
//!   open and is read until it has not grown for [`DETACHED_GRACE`] (the application may write
//!   to it until it reopens its log), its last line even without a newline; the new file under
//!   the name is a new identity, read from its start. After a restart, a checkpointed file that
//!   no pattern matches any more (renamed away while pixlake was down) is looked for by identity
//!   in the patterns' directories and read to its end from its checkpointed offset.
//! - **Copy-truncate** (the file copied away, then truncated in place): seen as a file shorter
//!   than the position reached, or whose first bytes changed; reading starts over at 0.
//!   Whatever pixlake had not read at the truncation exists only in the copy — with a shipper
//!   that is behind (stopped, or waiting for Kafka) that can be minutes of lines: prefer
//!   rotation by rename. A copy whose name matches a pattern is a new file, shipped whole.
//! - **Positions** are byte offsets after the last complete line (a line being written, without
//!   its newline yet, waits). With each position goes a fingerprint of the file's first bytes,
//!   so that a new file reusing a deleted file's inode is not resumed at the old offset.
//! - **Bounds**: a file is read only while no complete line is buffered, at most [`READ_CHUNK`]
//!   at a time; a line longer than [`MAX_LINE`] is cut there (its rest is the next line).
//! - A file that cannot be opened or read is skipped (said once) and tried again at each poll.
//! - **XML archives** ([`Framing::Xml`]): a file read to its end is closed at once and
//!   remembered by its position (reopened when its size changes, forgotten when it is gone; a
//!   restart does not even open the files the checkpoint read to their end), an unfinished
//!   message in a file that stopped growing for the grace is shipped as it is, and a message cut
//!   at [`MAX_LINE`] has its rest skipped up to its root's closing tag. At most [`MAX_OPEN`]
//!   files are open at once; more wait, oldest first, with their checkpointed positions kept.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::framing::{Frame, Framing};

/// How many first bytes of a file identify its content.
const HEAD: u64 = 1024;
/// Bytes read per file per poll at most.
pub const READ_CHUNK: usize = 1 << 20;
/// The longest line kept whole.
pub const MAX_LINE: usize = 16 << 20;
/// How long a renamed or deleted file is kept open after it stopped growing.
pub const DETACHED_GRACE: Duration = Duration::from_secs(5);
/// The most files open at once; more matching files wait for the next polls (oldest first).
pub const MAX_OPEN: usize = 256;

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

/// One complete record: a line, or (ISO 20022) an XML message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub id: FileId,
    pub path: PathBuf,
    /// 1-based line number in the file (since its last truncation); for an XML message, the
    /// line it starts on.
    pub number: u64,
    /// Byte offset of the line's start.
    pub offset: u64,
    /// Without the newline (a trailing `\r` removed too); an XML message from its root's start
    /// tag to its end tag.
    pub bytes: Vec<u8>,
}

/// Why following cannot start.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("`{pattern}` is not a valid file pattern; use * and ? in names, e.g. /var/log/core/*.jsonl")]
    Pattern {
        pattern: String,
        #[source]
        source: glob::PatternError,
    },
}

struct Followed {
    pos: Position,
    file: File,
    /// Bytes read past `pos.offset` that do not end a line yet.
    partial: Vec<u8>,
    /// The name now points to another file (renamed away, or deleted).
    detached: bool,
    /// When the file last grew (or was found).
    grew: Instant,
    size: u64,
    /// The closing tag (`</Envelope`) of an XML message cut at [`MAX_LINE`]: its rest is
    /// skipped, not framed again as records.
    discard: Option<Vec<u8>>,
}

/// The files being followed.
pub struct Follower {
    patterns: Vec<glob::Pattern>,
    /// In the order they were found: a rotated file before the one that replaced it.
    files: Vec<Followed>,
    /// Positions from a checkpoint, used when their file is found (first poll only).
    resume: BTreeMap<FileId, Position>,
    /// Paths that could not be opened, said once.
    unreadable: BTreeSet<PathBuf>,
    /// [`DETACHED_GRACE`], shorter in tests.
    grace: Duration,
    /// Lines, or XML messages.
    framing: Framing,
    /// XML files read to their end and closed (archives are written once): reopened when
    /// their size changes, forgotten when they are gone.
    done: BTreeMap<FileId, Position>,
}

/// A file's modification time, to the nanosecond.
fn mtime(meta: &std::fs::Metadata) -> (i64, i64) {
    (meta.mtime(), meta.mtime_nsec())
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The fingerprint of the first `len` bytes (at most [`HEAD`]); `None` if the file is shorter
/// now (truncated under us).
fn head(file: &mut File, len: u64) -> std::io::Result<Option<(u64, u64)>> {
    let mut buf = vec![0; len.min(HEAD) as usize];
    file.seek(SeekFrom::Start(0))?;
    match file.read_exact(&mut buf) {
        Ok(()) => Ok(Some((fnv1a(&buf), buf.len() as u64))),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

impl Follower {
    /// Follows the files matching `patterns`, resuming those in `checkpoint`.
    pub fn new(patterns: &[String], checkpoint: Vec<Position>) -> Result<Follower, FollowError> {
        let patterns = patterns
            .iter()
            .map(|p| glob::Pattern::new(p).map_err(|source| FollowError::Pattern { pattern: p.clone(), source }))
            .collect::<Result<_, _>>()?;
        Ok(Follower {
            patterns,
            files: Vec::new(),
            resume: checkpoint.into_iter().map(|p| (p.id, p)).collect(),
            unreadable: BTreeSet::new(),
            grace: DETACHED_GRACE,
            framing: Framing::Lines,
            done: BTreeMap::new(),
        })
    }

    /// Cuts records as `framing` says (lines by default).
    pub fn with_framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// Keeps renamed or deleted files open for `grace` after they stopped growing.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The positions of every followed file (and, before the first poll, of the checkpoint),
    /// for the checkpoint. Call after every line handed out was acknowledged.
    pub fn positions(&self) -> Vec<Position> {
        let mut out: Vec<Position> = self.files.iter().map(|f| f.pos.clone()).collect();
        out.extend(self.resume.values().cloned());
        out.extend(self.done.values().cloned());
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
    pub fn poll(&mut self, max: usize) -> Vec<Line> {
        self.discover();
        let mut lines = Vec::new();
        let mut i = 0;
        while i < self.files.len() && lines.len() < max {
            let f = &mut self.files[i];
            let at_end = match read_records(f, self.framing, max - lines.len(), &mut lines) {
                Ok(at_end) => at_end,
                Err(e) => {
                    tracing::warn!(path = %f.pos.path.display(), error = %e, "ship-log: cannot read a file; trying again at the next poll");
                    i += 1;
                    continue;
                }
            };
            let xml = self.framing == Framing::Xml;
            let idle = f.grew.elapsed() >= self.grace;
            // An XML file read to its end is closed at once (reopened if it grows); one with an
            // unfinished message after the grace, like a rotated file.
            let finished =
                at_end && lines.len() < max && (if f.detached { idle } else { xml && (f.partial.is_empty() || idle) });
            if finished {
                // The last record of a finished file, without its newline (or closing tag).
                let bytes = std::mem::take(&mut f.partial);
                let offset = f.pos.offset;
                f.pos.offset += bytes.len() as u64;
                if !bytes.iter().all(u8::is_ascii_whitespace) {
                    if !f.detached {
                        tracing::warn!(path = %f.pos.path.display(), offset, grace = ?self.grace,
                            "ship-log: an unfinished XML message at the end of a file that stopped growing; shipped as it is (the DLQ says why)");
                    }
                    let number = f.pos.line + 1;
                    f.pos.line += newlines(&bytes);
                    lines.push(Line { id: f.pos.id, path: f.pos.path.clone(), number, offset, bytes });
                }
                let f = self.files.remove(i);
                if f.detached {
                    tracing::info!(path = %f.pos.path.display(), lines = f.pos.line, "ship-log: rotated file read to its end");
                } else {
                    tracing::debug!(path = %f.pos.path.display(), "ship-log: file read to its end; closed until it changes");
                    self.done.insert(f.pos.id, f.pos);
                }
            } else {
                i += 1;
            }
        }
        lines
    }

    /// Opens new matching files (and, at the first poll, checkpointed files renamed away);
    /// notices renames.
    fn discover(&mut self) {
        let mut seen = BTreeMap::new();
        for pattern in &self.patterns {
            let Ok(paths) = glob::glob_with(pattern.as_str(), glob::MatchOptions::new()) else { continue };
            for path in paths.flatten() {
                let Ok(meta) = std::fs::metadata(&path) else { continue };
                if meta.is_file() {
                    seen.insert(FileId { dev: meta.dev(), ino: meta.ino() }, (path, mtime(&meta), false, meta.len()));
                }
            }
        }
        if !self.resume.is_empty() {
            // Checkpointed files no pattern matches: renamed away while pixlake was down?
            let dirs: BTreeSet<PathBuf> = self
                .patterns
                .iter()
                .filter_map(|p| std::path::Path::new(p.as_str()).parent().map(PathBuf::from))
                .filter(|d| !d.to_string_lossy().contains(['*', '?', '[']))
                .collect();
            for dir in dirs {
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                for entry in entries.flatten() {
                    let Ok(meta) = entry.metadata() else { continue };
                    let id = FileId { dev: meta.dev(), ino: meta.ino() };
                    if meta.is_file() && self.resume.contains_key(&id) && !seen.contains_key(&id) {
                        seen.insert(id, (entry.path(), mtime(&meta), true, meta.len()));
                    }
                }
            }
        }
        for f in &mut self.files {
            match seen.get(&f.pos.id) {
                Some((path, _, false, _)) => f.pos.path.clone_from(path),
                _ => f.detached = true,
            }
        }
        // Closed files that are gone are forgotten; those that changed are opened again from
        // their position (truncated or replaced ones from the start: see `open`).
        self.done.retain(|id, _| seen.contains_key(id));
        let mut new: Vec<(FileId, PathBuf, (i64, i64), bool)> = Vec::new();
        for (id, (path, mtime, renamed, len)) in &seen {
            if self.files.iter().any(|f| f.pos.id == *id) {
                continue;
            }
            if let Some(p) = self.done.get(id) {
                if p.offset == *len {
                    continue;
                }
                self.resume.insert(*id, p.clone());
            } else if self.framing == Framing::Xml
                && let Some(p) = self.resume.get(id).filter(|p| p.offset == *len)
            {
                // An archive file the checkpoint read to its end stays closed.
                self.done.insert(*id, Position { path: path.clone(), ..p.clone() });
                self.resume.remove(id);
                continue;
            }
            new.push((*id, path.clone(), *mtime, *renamed));
        }
        // Oldest first, to the nanosecond (files written within one second keep their order),
        // then by name.
        new.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.1.cmp(&b.1)));
        let room = MAX_OPEN.saturating_sub(self.files.len());
        for (id, path, _, renamed) in new.into_iter().take(room) {
            self.done.remove(&id);
            if let Some(f) = self.open(&path) {
                let mut f = f;
                f.detached = renamed;
                tracing::info!(path = %path.display(), offset = f.pos.offset, renamed, "ship-log: following");
                self.files.push(f);
            }
        }
        // A position not used (no room to open its file yet, or it could not be opened) is kept
        // for the next poll; checkpointed files no longer found are gone (deleted after
        // rotation): forgotten, so the checkpoint does not grow forever.
        let resume = std::mem::take(&mut self.resume);
        for (id, p) in resume {
            if seen.contains_key(&id) {
                self.resume.insert(id, p);
            } else {
                tracing::info!(path = %p.path.display(), "ship-log: a checkpointed file is gone; forgetting it");
            }
        }
    }

    /// Opens `path`, its identity from the open file (not the name, which may change between).
    fn open(&mut self, path: &std::path::Path) -> Option<Followed> {
        let opened = File::open(path).and_then(|mut file| {
            let meta = file.metadata()?;
            let id = FileId { dev: meta.dev(), ino: meta.ino() };
            let mut pos = Position { id, path: path.to_owned(), offset: 0, line: 0, head_hash: 0, head_len: 0 };
            if let Some(saved) = self.resume.remove(&id) {
                let same = meta.len() >= saved.offset
                    && (saved.head_len == 0 || head(&mut file, saved.head_len)?.is_some_and(|(h, _)| h == saved.head_hash));
                if same {
                    pos = Position { path: path.to_owned(), ..saved };
                } else {
                    tracing::info!(path = %path.display(), "ship-log: file changed since the checkpoint (truncated or replaced); reading it from the start");
                }
            }
            Ok(Followed {
                pos,
                file,
                partial: Vec::new(),
                detached: false,
                grew: Instant::now(),
                size: meta.len(),
                discard: None,
            })
        });
        match opened {
            Ok(f) => {
                self.unreadable.remove(path);
                Some(f)
            }
            Err(e) => {
                if self.unreadable.insert(path.to_owned()) {
                    tracing::warn!(path = %path.display(), error = %e, "ship-log: cannot open a matching file; skipping it until it can be read");
                }
                None
            }
        }
    }
}

/// Reads complete records of `f` into `out` (at most `max`); whether the file's end was reached.
fn read_records(f: &mut Followed, framing: Framing, max: usize, out: &mut Vec<Line>) -> std::io::Result<bool> {
    let len = f.file.metadata()?.len();
    if len != f.size {
        f.size = len;
        f.grew = Instant::now();
    }
    let read_to = f.pos.offset + f.partial.len() as u64;
    // Copy-truncate: shorter than what was read, or other first bytes than those fingerprinted.
    let rewritten = f.pos.head_len > 0 && head(&mut f.file, f.pos.head_len)?.is_none_or(|(h, _)| h != f.pos.head_hash);
    if len < read_to || rewritten {
        tracing::info!(path = %f.pos.path.display(), "ship-log: file truncated (copy-truncate rotation); reading it from the start");
        f.pos.offset = 0;
        f.pos.line = 0;
        f.pos.head_len = 0;
        f.partial.clear();
    }
    let read_to = f.pos.offset + f.partial.len() as u64;
    // Read only when no complete record is buffered: memory stays within a chunk and a record.
    if len > read_to && (f.discard.is_some() || framing.next(&f.partial).is_none()) {
        f.file.seek(SeekFrom::Start(read_to))?;
        let want = ((len - read_to) as usize).min(READ_CHUNK);
        let start = f.partial.len();
        f.partial.resize(start + want, 0);
        let n = f.file.read(&mut f.partial[start..])?;
        f.partial.truncate(start + n);
    }
    if f.pos.head_len < HEAD && f.pos.offset + f.partial.len() as u64 > f.pos.head_len {
        let known = (f.pos.offset + f.partial.len() as u64).min(HEAD);
        if let Some((h, l)) = head(&mut f.file, known)? {
            f.pos.head_hash = h;
            f.pos.head_len = l;
        }
    }
    let mut taken = 0;
    let mut consumed = 0;
    while taken < max {
        if let Some(close) = f.discard.take() {
            let rest = &f.partial[consumed..];
            // Through the cut message's closing tag, or all but what may be its beginning.
            let through = memchr::memmem::find(rest, &close)
                .and_then(|p| memchr::memchr(b'>', &rest[p + close.len()..]).map(|q| p + close.len() + q + 1));
            let skip = through.unwrap_or_else(|| rest.len().saturating_sub(close.len() + 64));
            f.pos.line += newlines(&rest[..skip]);
            consumed += skip;
            if through.is_none() {
                f.discard = Some(close);
                break;
            }
            continue;
        }
        let rest = &f.partial[consumed..];
        let frame = match framing.next(rest) {
            Some(frame) => frame,
            // A record too long to keep whole: cut (the mapping sends it to the DLQ); the rest
            // of an XML message is skipped.
            None if rest.len() >= MAX_LINE => {
                if framing == Framing::Xml {
                    let start = rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
                    f.discard = super::framing::root_name(&rest[start..]).map(|n| [b"</".as_slice(), n].concat());
                }
                Frame { start: 0, end: MAX_LINE, next: MAX_LINE }
            }
            None => break,
        };
        let bytes = &rest[frame.start..frame.end];
        // A line is numbered by its count; an XML message by the line it starts on.
        let number = match framing {
            Framing::Lines => f.pos.line + 1,
            Framing::Xml => f.pos.line + newlines(&rest[..frame.start]) + 1,
        };
        f.pos.line = match framing {
            Framing::Lines => f.pos.line + 1,
            Framing::Xml => f.pos.line + newlines(&rest[..frame.next]),
        };
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            out.push(Line {
                id: f.pos.id,
                path: f.pos.path.clone(),
                number,
                offset: f.pos.offset + (consumed + frame.start) as u64,
                bytes: bytes.to_vec(),
            });
            taken += 1;
        }
        consumed += frame.next;
    }
    let blank = framing.insignificant(&f.partial[consumed..]);
    f.pos.line += newlines(&f.partial[consumed..consumed + blank]);
    consumed += blank;
    f.partial.drain(..consumed);
    f.pos.offset += consumed as u64;
    Ok(len <= f.pos.offset + f.partial.len() as u64 && framing.next(&f.partial).is_none())
}

fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
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
        let mut f = Follower::new(std::slice::from_ref(&pattern), Vec::new()).unwrap().with_grace(Duration::ZERO);
        append(&log, &["a1", "a2"]);
        assert_eq!(texts(&f.poll(100)), ["a1", "a2"]);
        // A line being written waits for its newline.
        std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"a3-part").unwrap();
        assert!(f.poll(100).is_empty());
        std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"ial\n").unwrap();
        assert_eq!(texts(&f.poll(100)), ["a3-partial"]);
        // Rename rotation: the old file's late lines, then the new file's.
        let rotated = dir.path().join("core.jsonl.1");
        std::fs::rename(&log, &rotated).unwrap();
        append(&rotated, &["a4"]);
        append(&log, &["b1"]);
        let got = f.poll(100);
        assert_eq!(texts(&got), ["a4", "b1"], "the rotated file first, then the new one");
        assert_eq!(got[1].number, 1);
        assert_eq!(f.len(), 1, "the rotated file is dropped once read to its end");
        // Copy-truncate: the file starts over.
        std::fs::copy(&log, dir.path().join("core.jsonl.2")).unwrap();
        std::fs::File::create(&log).unwrap();
        append(&log, &["c1", "c2-longer-than-b1"]);
        assert_eq!(texts(&f.poll(100)), ["c1", "c2-longer-than-b1"]);
        // A new file matching the pattern.
        append(&dir.path().join("other.jsonl"), &["d1"]);
        assert_eq!(texts(&f.poll(100)), ["d1"]);
        // `max` bounds a poll; the rest comes next time.
        append(&log, &["e1", "e2", "e3"]);
        assert_eq!(texts(&f.poll(2)), ["e1", "e2"]);
        assert_eq!(texts(&f.poll(2)), ["e3"]);
    }

    #[test]
    fn a_renamed_file_is_read_until_it_stops_growing_and_found_again_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("core.jsonl");
        // The exact name: the rotated name matches no pattern.
        let pattern = log.display().to_string();
        append(&log, &["first-line-of-the-file"]);
        let mut f =
            Follower::new(std::slice::from_ref(&pattern), Vec::new()).unwrap().with_grace(Duration::from_millis(300));
        assert_eq!(texts(&f.poll(100)), ["first-line-of-the-file"]);
        let saved = f.positions();
        let rotated = dir.path().join("core.jsonl.1");
        std::fs::rename(&log, &rotated).unwrap();
        // The application writes on to the renamed file until it reopens its log.
        append(&rotated, &["late-1"]);
        assert_eq!(texts(&f.poll(100)), ["late-1"]);
        std::fs::OpenOptions::new().append(true).open(&rotated).unwrap().write_all(b"last-without-newline").unwrap();
        assert!(f.poll(100).is_empty(), "waits for the newline while the file may grow");
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(texts(&f.poll(100)), ["last-without-newline"]);
        assert!(f.is_empty(), "then closed");
        // Restarted from the checkpoint taken before the rotation: found by identity.
        let mut again = Follower::new(std::slice::from_ref(&pattern), saved).unwrap().with_grace(Duration::ZERO);
        assert_eq!(texts(&again.poll(100)), ["late-1", "last-without-newline"]);
    }

    #[test]
    fn xml_messages_are_records_numbered_by_the_line_they_start_on() {
        let dir = tempfile::tempdir().unwrap();
        let spi = dir.path().join("spi.xml");
        let pattern = spi.display().to_string();
        std::fs::write(
            &spi,
            "<?xml version=\"1.0\"?>\n<Document>\n  <A/>\n</Document>\n\n<Envelope><Document/></Envelope>\n<Docu",
        )
        .unwrap();
        let mut f = Follower::new(std::slice::from_ref(&pattern), Vec::new()).unwrap().with_framing(Framing::Xml);
        let got = f.poll(100);
        assert_eq!(texts(&got), ["<Document>\n  <A/>\n</Document>", "<Envelope><Document/></Envelope>"]);
        assert_eq!(f.len(), 1, "open while a message is unfinished");
        assert_eq!((got[0].number, got[1].number), (2, 6));
        assert_eq!(got[1].offset, 53);
        // The unfinished message waits; the position stops before it.
        assert_eq!(f.positions()[0].offset, 86);
        append(&spi, &["ment/>"]);
        let got = f.poll(100);
        assert_eq!((texts(&got), got[0].number), (vec!["<Document/>".to_owned()], 7));
        assert_eq!(f.positions()[0].offset, std::fs::metadata(&spi).unwrap().len(), "trailing whitespace taken");
        assert!(f.is_empty(), "an XML file read to its end is closed");
        assert!(f.poll(100).is_empty(), "and stays closed while it does not change");
        assert!(f.is_empty());
        append(&spi, &["<Document><Z/></Document>"]);
        assert_eq!(texts(&f.poll(100)), ["<Document><Z/></Document>"], "reopened where it was");
        // After a restart, a file the checkpoint read to its end is not even opened.
        let mut again = Follower::new(&[pattern], f.positions()).unwrap().with_framing(Framing::Xml);
        assert!(again.poll(100).is_empty());
        assert!(again.is_empty());
        assert_eq!(again.positions(), f.positions());
    }

    #[test]
    fn an_unfinished_xml_message_in_a_file_that_stopped_growing_is_shipped_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let spi = dir.path().join("crashed.xml");
        std::fs::write(&spi, "<Document/>\n<Envelope><Document><FIToFI").unwrap();
        let pattern = spi.display().to_string();
        let mut f =
            Follower::new(&[pattern], Vec::new()).unwrap().with_framing(Framing::Xml).with_grace(Duration::ZERO);
        let got = f.poll(100);
        assert_eq!(texts(&got), ["<Document/>", "<Envelope><Document><FIToFI"]);
        assert_eq!((got[1].number, got[1].offset), (2, 12));
        assert!(f.is_empty());
    }

    #[test]
    fn an_xml_message_too_large_is_cut_once_and_its_rest_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let spi = dir.path().join("big.xml");
        let mut big = b"<Envelope><Document>".to_vec();
        while big.len() <= MAX_LINE + READ_CHUNK {
            big.extend_from_slice(b"<Document><Ustrd>x</Ustrd></Document>\n");
        }
        big.extend_from_slice(b"</Document></Envelope>\n<Document><Y/></Document>\n");
        std::fs::write(&spi, &big).unwrap();
        let pattern = spi.display().to_string();
        let mut f = Follower::new(&[pattern], Vec::new()).unwrap().with_framing(Framing::Xml);
        let mut got = Vec::new();
        for _ in 0..40 {
            got.extend(f.poll(100));
        }
        let sizes: Vec<usize> = got.iter().map(|l| l.bytes.len()).collect();
        assert_eq!(sizes, [MAX_LINE, "<Document><Y/></Document>".len()], "the cut, then the next message only");
        assert_eq!(got[1].number, big.iter().filter(|&&b| b == b'\n').count() as u64);
    }

    #[test]
    fn resumes_from_a_checkpoint_unless_the_file_was_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("core.jsonl");
        let pattern = format!("{}/*.jsonl", dir.path().display());
        append(&log, &["first-line-of-the-file", "x2"]);
        let mut f = Follower::new(std::slice::from_ref(&pattern), Vec::new()).unwrap();
        assert_eq!(f.poll(1).len(), 1);
        let saved = f.positions();
        append(&log, &["x3"]);
        let mut again = Follower::new(std::slice::from_ref(&pattern), saved.clone()).unwrap();
        let lines = again.poll(100);
        assert_eq!(texts(&lines), ["x2", "x3"]);
        assert_eq!(lines[0].number, 2);
        // Replaced in place with other content (same inode): from the start.
        std::fs::write(&log, "other-content-entirely-different\ny2\n").unwrap();
        let mut replaced = Follower::new(&[pattern], saved).unwrap();
        assert_eq!(texts(&replaced.poll(100)), ["other-content-entirely-different", "y2"]);
    }
}
