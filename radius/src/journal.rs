//! The crash-proof outbox: every accounting record is written here, and fsynced, before it is
//! sent, and stays pending until a server acknowledged it.
//!
//! Synchronous `std::fs` on purpose: the daemon calls it from its accounting task (one owner,
//! no locking), and every call waits for an fsync; a daemon on a slow disk can run that task's
//! journal calls under `spawn_blocking`. One process per journal file: nothing locks it.
//!
//! # Format
//! A text file of lines `CRC<TAB>JSON<LF>`, CRC being the CRC-32 (IEEE) of the JSON octets in
//! 8 hex digits. The first line is a header (`{"header":{"version":1,"next_seq":N}}`), then
//! `{"record":{"seq":N,"record":{…}}}` for an appended record and `{"ack":N}` once it is
//! delivered.
//!
//! # Repairs at open
//! No line is dropped silently: every line [`Journal::open`] leaves out is first appended to
//! `<file>.corrupt` (fsynced) with its line number and why, for the operator. A line that fails
//! its CRC or does not parse is:
//! - at the end of the file (one or more such lines): a write torn by a crash, counted in
//!   [`Recovery::torn_lines`] and cut off the file so the next append starts clean;
//! - followed by a valid line: corruption (a torn write is never followed by a later append:
//!   each append is fsynced before the next one starts). It is counted in
//!   [`Recovery::corrupt_lines`] and logged as an error, every valid record is kept, and the
//!   journal is rewritten without it. A valid line out of place (a second header, a record
//!   whose sequence number goes backwards) is treated the same. A corrupt record line loses
//!   that record from the journal (it is in `.corrupt`); a corrupt ack line sends its record
//!   again (a duplicate, never a loss). If `.corrupt` cannot be written, the journal is left
//!   as it is (the bad lines are skipped in memory and moved aside at the next try).
//!
//! The only refusal is a header of another version ([`JournalError::Version`]): its records
//! cannot be read safely.
//!
//! # Durability
//! [`Journal::append`] and [`Journal::ack`] both `fdatasync` before returning: a lost append
//! loses a record, a lost ack sends a duplicate after a crash, and neither is acceptable. Use
//! [`Journal::append_many`], [`Journal::ack_many`] and [`Journal::replace`] to pay one fsync
//! for several. A failed write is cut back off the file: nothing of it stays. Compaction writes
//! the pending records to `<file>.tmp`, fsyncs it, renames it over the journal and fsyncs the
//! directory.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::record::AccountingRecord;

const VERSION: u32 = 1;
/// Compact once this many delivered records sit in the file (and they outnumber the pending).
const DEFAULT_COMPACT_AFTER: usize = 1024;

/// A record's sequence number in the journal; increases for the life of the file, across
/// compactions and restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("accounting journal {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// `limit` records are pending: nothing is dropped, the caller decides.
    #[error("accounting journal is full: {limit} records not yet delivered")]
    Full { limit: usize },
    /// The header names a format this code cannot read; the file is left untouched.
    #[error("accounting journal {path}: format version {version}, this vpnd reads version {VERSION}; move the file aside to start a new journal")]
    Version { path: PathBuf, version: u32 },
    #[error("accounting journal: record {0} is not pending")]
    NotPending(Seq),
}

/// What [`Journal::open`] repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Invalid lines at the end of the file (a write torn by a crash), cut off.
    pub torn_lines: usize,
    /// Invalid or misplaced lines followed by valid ones, moved aside (logged as an error).
    pub corrupt_lines: usize,
    /// Where the lines left out were saved (`<file>.corrupt`); `None` if none were, or if
    /// saving them failed (then the journal was left as it was).
    pub corrupt_file: Option<PathBuf>,
    /// Acks of records the file does not hold (harmless; counted to be seen).
    pub orphan_acks: usize,
    /// A compaction's temporary file left by a crash, removed.
    pub stale_temp: bool,
}

#[derive(Serialize)]
enum EntryOut<'a> {
    #[serde(rename = "header")]
    Header { version: u32, next_seq: u64 },
    #[serde(rename = "record")]
    Record {
        seq: Seq,
        record: &'a AccountingRecord,
    },
    #[serde(rename = "ack")]
    Ack(Seq),
}

#[derive(Deserialize)]
enum EntryIn {
    #[serde(rename = "header")]
    Header { version: u32, next_seq: u64 },
    #[serde(rename = "record")]
    Record {
        seq: Seq,
        record: Box<AccountingRecord>,
    },
    #[serde(rename = "ack")]
    Ack(Seq),
}

pub struct Journal {
    path: PathBuf,
    file: File,
    /// Length of the valid file: an append that fails is cut back to it.
    len: u64,
    limit: usize,
    next_seq: u64,
    /// Pending records as their journal lines, rewritten as they are by compaction.
    /// Where each pending record's line sits in the file (offset, length): compaction reads
    /// them back, so the journal holds no copy of them in memory.
    pending: BTreeMap<Seq, (u64, usize)>,
    /// Delivered records still in the file.
    acked_in_file: usize,
    compact_after: usize,
    recovery: Recovery,
    /// Corrupt lines still in the file and not yet saved to `<file>.corrupt` (it could not be
    /// written): compaction, which drops them, saves them first.
    unsaved_corrupt: Vec<u8>,
}

/// A line [`Journal::open`] leaves out.
struct Bad {
    line: usize,
    reason: String,
    start: usize,
    end: usize,
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("pending", &self.pending.len())
            .field("limit", &self.limit)
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

impl Journal {
    /// Opens (or creates, mode 0600) the journal at `path` and returns the records not yet
    /// delivered by a previous run, oldest first. `limit` bounds the pending records.
    pub fn open(
        path: impl AsRef<Path>,
        limit: usize,
    ) -> Result<(Journal, Vec<(Seq, AccountingRecord)>), JournalError> {
        let path = path.as_ref().to_path_buf();
        let io_err = |op: &'static str| {
            let path = path.clone();
            move |source| JournalError::Io { path, op, source }
        };
        let mut recovery = Recovery::default();

        // A crash during compaction leaves the temp file; the journal itself is intact then.
        let temp = temp_path(&path);
        if temp.exists() {
            fs::remove_file(&temp).map_err(io_err("remove stale temporary file"))?;
            recovery.stale_temp = true;
        }

        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("open"))?;
        if !existed {
            sync_dir(&path).map_err(io_err("fsync directory"))?;
        }
        let mut content = Vec::new();
        file.read_to_end(&mut content).map_err(io_err("read"))?;

        let mut journal = Journal {
            path: path.clone(),
            file,
            len: 0,
            limit,
            next_seq: 1,
            pending: BTreeMap::new(),
            acked_in_file: 0,
            compact_after: DEFAULT_COMPACT_AFTER,
            recovery,
            unsaved_corrupt: Vec::new(),
        };
        let (records, corrupt, torn) = journal.replay(&content)?;
        journal.recovery.corrupt_lines = corrupt.len();
        journal.recovery.torn_lines = torn.len();

        if !torn.is_empty() {
            // Saved for the operator, best effort: a torn write is expected after a crash,
            // and its record was never reported as written.
            let text = bad_lines_text(&path, &content, &torn, "torn write at the end");
            match append_synced(&corrupt_path(&path), &text) {
                Ok(()) => journal.recovery.corrupt_file = Some(corrupt_path(&path)),
                Err(e) => tracing::warn!(path = %path.display(), error = %e,
                    "accounting journal: cannot save the torn lines aside"),
            }
            tracing::warn!(path = %path.display(), torn_lines = torn.len(),
                "accounting journal: torn write at the end cut off");
        }
        let mut rewritten = false;
        if !corrupt.is_empty() {
            let lines: Vec<usize> = corrupt.iter().map(|b| b.line).collect();
            journal.unsaved_corrupt = bad_lines_text(&path, &content, &corrupt, "corrupt");
            match journal.compact() {
                Ok(()) => {
                    rewritten = true;
                    journal.recovery.corrupt_file = Some(corrupt_path(&path));
                    tracing::error!(path = %path.display(), corrupt_lines = corrupt.len(), ?lines,
                        saved_to = %corrupt_path(&path).display(),
                        "accounting journal: CORRUPT lines in the middle moved aside; the valid records are kept, the journal rewritten without them");
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), corrupt_lines = corrupt.len(), ?lines, error = %e,
                        "accounting journal: CORRUPT lines in the middle skipped, but they could not be moved aside: the file is left as it is and they are moved at the next compaction or start");
                    if !journal.unsaved_corrupt.is_empty() {
                        journal.recovery.corrupt_file = None;
                    }
                }
            }
        }
        if !rewritten && journal.len < content.len() as u64 {
            journal
                .file
                .set_len(journal.len)
                .map_err(io_err("truncate torn tail"))?;
            journal.file.sync_all().map_err(io_err("fsync"))?;
        }
        if journal.len == 0 {
            let header = journal.header_line();
            journal.write_synced(&header, "write header")?;
        }
        if journal.recovery.orphan_acks > 0 {
            tracing::warn!(path = %path.display(), orphan_acks = journal.recovery.orphan_acks,
                "accounting journal: acks of unknown records ignored");
        }
        Ok((journal, records))
    }

    /// Parses the file; sets `len` to the end of its last valid line. Returns the records
    /// still pending, the corrupt lines (followed by a valid one) and the torn ones (at the
    /// end).
    #[allow(clippy::type_complexity)]
    fn replay(
        &mut self,
        content: &[u8],
    ) -> Result<(Vec<(Seq, AccountingRecord)>, Vec<Bad>, Vec<Bad>), JournalError> {
        let mut records: BTreeMap<Seq, AccountingRecord> = BTreeMap::new();
        let mut corrupt = Vec::new();
        // Invalid lines since the last valid one: corrupt if a valid line follows, else torn.
        let mut suspect: Vec<Bad> = Vec::new();
        let mut offset = 0usize;
        let mut line_no = 0usize;
        let mut last_seq: Option<Seq> = None;

        while offset < content.len() {
            line_no += 1;
            let (line, end, next, complete) =
                match content[offset..].iter().position(|&b| b == b'\n') {
                    Some(i) => (
                        &content[offset..offset + i],
                        offset + i,
                        offset + i + 1,
                        true,
                    ),
                    None => (&content[offset..], content.len(), content.len(), false),
                };
            let bad = |reason: String| Bad {
                line: line_no,
                reason,
                start: offset,
                end,
            };
            let parsed = if complete {
                parse_line(line)
            } else {
                Err("no end of line".into())
            };
            let entry = match parsed {
                Ok(entry) => entry,
                Err(reason) => {
                    suspect.push(bad(reason));
                    offset = next;
                    continue;
                }
            };
            corrupt.append(&mut suspect);
            let misplaced = match entry {
                EntryIn::Header { version, next_seq } if line_no == 1 => {
                    if version != VERSION {
                        return Err(JournalError::Version {
                            path: self.path.clone(),
                            version,
                        });
                    }
                    self.next_seq = self.next_seq.max(next_seq);
                    None
                }
                EntryIn::Header { .. } => Some("a header after the first line".to_string()),
                EntryIn::Record { seq, .. } if last_seq.is_some_and(|last| seq <= last) => {
                    Some(format!("record {seq} out of order"))
                }
                EntryIn::Record { seq, record } => {
                    last_seq = Some(seq);
                    self.next_seq = self.next_seq.max(seq.0 + 1);
                    self.pending.insert(seq, (offset as u64, next - offset));
                    records.insert(seq, *record);
                    None
                }
                EntryIn::Ack(seq) => {
                    if self.pending.remove(&seq).is_some() {
                        records.remove(&seq);
                        self.acked_in_file += 1;
                    } else {
                        self.recovery.orphan_acks += 1;
                    }
                    None
                }
            };
            if let Some(reason) = misplaced {
                corrupt.push(bad(reason));
            }
            self.len = next as u64;
            offset = next;
        }
        Ok((records.into_iter().collect(), corrupt, suspect))
    }

    /// Appends the corrupt lines not yet saved to `<file>.corrupt`.
    fn save_corrupt(&mut self) -> Result<(), JournalError> {
        if self.unsaved_corrupt.is_empty() {
            return Ok(());
        }
        let path = corrupt_path(&self.path);
        append_synced(&path, &self.unsaved_corrupt).map_err(|source| JournalError::Io {
            path,
            op: "save corrupt lines aside",
            source,
        })?;
        self.unsaved_corrupt.clear();
        Ok(())
    }

    /// Writes `record`, fsyncs, and returns its sequence number. [`JournalError::Full`] when
    /// `limit` records are pending.
    pub fn append(&mut self, record: &AccountingRecord) -> Result<Seq, JournalError> {
        if self.pending.len() >= self.limit {
            return Err(JournalError::Full { limit: self.limit });
        }
        let seq = Seq(self.next_seq);
        let line = encode_line(&EntryOut::Record { seq, record });
        let at = self.len;
        self.write_synced(&line, "append")?;
        self.next_seq += 1;
        self.pending.insert(seq, (at, line.len()));
        Ok(seq)
    }

    /// Appends several records with one write and one fdatasync (a burst of session events
    /// costs one disk flush, not one per record). Records past the limit are not written:
    /// the returned sequence numbers cover the first `n` records only, and the caller must
    /// report the rest (`Full`) as not queued.
    pub fn append_many(&mut self, records: &[AccountingRecord]) -> Result<Vec<Seq>, JournalError> {
        let room = self.limit.saturating_sub(self.pending.len());
        if room == 0 && !records.is_empty() {
            return Err(JournalError::Full { limit: self.limit });
        }
        let take = records.len().min(room);
        let mut bytes = Vec::new();
        let mut lines = Vec::with_capacity(take);
        for (i, record) in records[..take].iter().enumerate() {
            let seq = Seq(self.next_seq + i as u64);
            let line = encode_line(&EntryOut::Record { seq, record });
            lines.push((seq, (self.len + bytes.len() as u64, line.len())));
            bytes.extend_from_slice(&line);
        }
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        self.write_synced(&bytes, "append")?;
        self.next_seq += take as u64;
        let seqs = lines.iter().map(|(s, _)| *s).collect();
        self.pending.extend(lines);
        Ok(seqs)
    }

    /// Marks `seq` delivered, fsynced. May compact the file afterwards.
    pub fn ack(&mut self, seq: Seq) -> Result<(), JournalError> {
        self.ack_many(&[seq])
    }

    /// Marks several records delivered with one write and one fsync. Nothing is written if one
    /// of them is not pending.
    pub fn ack_many(&mut self, seqs: &[Seq]) -> Result<(), JournalError> {
        self.replace(&[], seqs).map(|_| ())
    }

    /// Appends `add` and marks `remove` delivered with one write and one fdatasync, e.g. to
    /// replace a prepared record by a newer one: the new lines come first, so a crash leaves
    /// the old records, or the new ones (maybe with the old), never neither. Nothing changes
    /// if it fails, if one of `remove` is not pending, or if `add` would pass the limit
    /// ([`JournalError::Full`], counting `remove` as gone).
    pub fn replace(
        &mut self,
        add: &[AccountingRecord],
        remove: &[Seq],
    ) -> Result<Vec<Seq>, JournalError> {
        for (i, seq) in remove.iter().enumerate() {
            if !self.pending.contains_key(seq) || remove[..i].contains(seq) {
                return Err(JournalError::NotPending(*seq));
            }
        }
        if !add.is_empty() && self.pending.len() - remove.len() + add.len() > self.limit {
            return Err(JournalError::Full { limit: self.limit });
        }
        let mut bytes = Vec::new();
        let mut lines = Vec::with_capacity(add.len());
        for (i, record) in add.iter().enumerate() {
            let seq = Seq(self.next_seq + i as u64);
            let line = encode_line(&EntryOut::Record { seq, record });
            lines.push((seq, (self.len + bytes.len() as u64, line.len())));
            bytes.extend_from_slice(&line);
        }
        for seq in remove {
            bytes.extend(encode_line(&EntryOut::Ack(*seq)));
        }
        if bytes.is_empty() {
            return Ok(Vec::new());
        }
        self.write_synced(&bytes, if add.is_empty() { "ack" } else { "append" })?;
        self.next_seq += add.len() as u64;
        let seqs = lines.iter().map(|(s, _)| *s).collect();
        self.pending.extend(lines);
        for seq in remove {
            self.pending.remove(seq);
        }
        self.acked_in_file += remove.len();
        if !remove.is_empty()
            && self.acked_in_file >= self.compact_after
            && self.acked_in_file >= self.pending.len()
        {
            // The acks are durable already; a failed compaction only leaves a longer file.
            if let Err(e) = self.compact() {
                tracing::warn!(error = %e, "accounting journal compaction failed");
            }
        }
        Ok(seqs)
    }

    /// Rewrites the file with only the pending records: temp file, fsync, rename, fsync of the
    /// directory. A crash at any point leaves either the old or the new file, both complete.
    /// Corrupt lines still in the file are saved to `<file>.corrupt` first; if that fails,
    /// nothing is compacted.
    pub fn compact(&mut self) -> Result<(), JournalError> {
        self.save_corrupt()?;
        let temp = temp_path(&self.path);
        let io_err = |op: &'static str| {
            let path = temp.clone();
            move |source| JournalError::Io { path, op, source }
        };
        let mut content = self.header_line();
        // The pending lines, read back from where they were written; their new positions.
        let mut moved = Vec::with_capacity(self.pending.len());
        for (seq, &(at, len)) in &self.pending {
            let start = content.len();
            content.resize(start + len, 0);
            self.file
                .read_exact_at(&mut content[start..], at)
                .map_err(|source| JournalError::Io {
                    path: self.path.clone(),
                    op: "read back for compaction",
                    source,
                })?;
            moved.push((*seq, (start as u64, len)));
        }
        {
            let mut out = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)
                .map_err(io_err("create"))?;
            out.write_all(&content).map_err(io_err("write"))?;
            out.sync_all().map_err(io_err("fsync"))?;
        }
        fs::rename(&temp, &self.path).map_err(io_err("rename over the journal"))?;
        sync_dir(&self.path).map_err(io_err("fsync directory"))?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(|source| JournalError::Io {
                path: self.path.clone(),
                op: "reopen",
                source,
            })?;
        self.len = content.len() as u64;
        self.acked_in_file = 0;
        self.pending = moved.into_iter().collect();
        Ok(())
    }

    /// Records written and not yet acknowledged.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Whether `seq` is written and not yet acknowledged.
    pub fn is_pending(&self, seq: Seq) -> bool {
        self.pending.contains_key(&seq)
    }

    /// Sequence numbers of the pending records, oldest first.
    pub fn pending_seqs(&self) -> Vec<Seq> {
        self.pending.keys().copied().collect()
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What [`Journal::open`] repaired.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Compact once `n` delivered records sit in the file (default 1024), if they also
    /// outnumber the pending ones.
    pub fn set_compact_after(&mut self, n: usize) {
        self.compact_after = n.max(1);
    }

    fn header_line(&self) -> Vec<u8> {
        encode_line(&EntryOut::Header {
            version: VERSION,
            next_seq: self.next_seq,
        })
    }

    /// Appends `bytes` and fdatasyncs; on failure cuts the file back so that no partial line
    /// stays in front of later appends.
    fn write_synced(&mut self, bytes: &[u8], op: &'static str) -> Result<(), JournalError> {
        let result = self
            .file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = result {
            if let Err(e) = self.file.set_len(self.len) {
                tracing::error!(path = %self.path.display(), error = %e,
                    "accounting journal: cannot cut back a failed write");
            }
            return Err(JournalError::Io {
                path: self.path.clone(),
                op,
                source,
            });
        }
        self.len += bytes.len() as u64;
        Ok(())
    }
}

fn encode_line(entry: &EntryOut<'_>) -> Vec<u8> {
    let json = serde_json::to_vec(entry).expect("journal entries serialize");
    let mut line = format!("{:08x}\t", crc32fast::hash(&json)).into_bytes();
    line.extend_from_slice(&json);
    line.push(b'\n');
    line
}

fn parse_line(line: &[u8]) -> Result<EntryIn, String> {
    let tab = line.iter().position(|&b| b == b'\t').ok_or("no CRC")?;
    let (crc, json) = (&line[..tab], &line[tab + 1..]);
    let crc = std::str::from_utf8(crc)
        .ok()
        .filter(|s| s.len() == 8)
        .and_then(|s| u32::from_str_radix(s, 16).ok())
        .ok_or("bad CRC field")?;
    if crc32fast::hash(json) != crc {
        return Err("CRC mismatch".into());
    }
    serde_json::from_slice(json).map_err(|e| format!("JSON: {e}"))
}

/// The lines left out, as saved in `<file>.corrupt`: a comment line with the journal, the line
/// number and why, then the line's octets as they were.
fn bad_lines_text(path: &Path, content: &[u8], bad: &[Bad], kind: &str) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut out = Vec::new();
    for b in bad {
        out.extend(
            format!(
                "# {now} {} line {} ({kind}): {}\n",
                path.display(),
                b.line,
                b.reason.replace('\n', " ")
            )
            .into_bytes(),
        );
        out.extend_from_slice(&content[b.start..b.end]);
        out.push(b'\n');
    }
    out
}

/// Appends `bytes` to `path` (created 0600 if needed) and fsyncs it (and its directory when
/// created).
fn append_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let existed = path.exists();
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    if !existed {
        sync_dir(path)?;
    }
    Ok(())
}

fn corrupt_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".corrupt");
    path.with_file_name(name)
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}
