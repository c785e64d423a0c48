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
//! delivered. A line that fails its CRC or does not parse is:
//! - at the end of the file (one or more such lines): a write torn by a crash, skipped, counted
//!   in [`Recovery::torn_lines`], and cut off the file so the next append starts clean;
//! - followed by a valid line: [`JournalError::Corrupt`]; the file is left untouched for the
//!   operator (moving it aside starts a fresh journal).
//!
//! # Durability
//! [`Journal::append`] and [`Journal::ack`] both `fdatasync` before returning: a lost append
//! loses a record, a lost ack sends a duplicate after a crash, and neither is acceptable. Use
//! [`Journal::ack_many`] to pay one fsync for several acks. Compaction writes the pending
//! records to `<file>.tmp`, fsyncs it, renames it over the journal and fsyncs the directory.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

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
    #[error("accounting journal {path}: line {line} is corrupt ({reason}) and valid entries follow it; move the file aside to start a new journal")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("accounting journal: record {0} is not pending")]
    NotPending(Seq),
}

/// What [`Journal::open`] repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Invalid lines at the end of the file (a write torn by a crash), cut off.
    pub torn_lines: usize,
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
        };
        let records = journal.replay(&content)?;

        if journal.len < content.len() as u64 {
            tracing::warn!(path = %path.display(), torn_lines = journal.recovery.torn_lines,
                "accounting journal: torn write at the end cut off");
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

    /// Parses the file; sets `len` to the end of its last valid line.
    fn replay(&mut self, content: &[u8]) -> Result<Vec<(Seq, AccountingRecord)>, JournalError> {
        let mut records: BTreeMap<Seq, AccountingRecord> = BTreeMap::new();
        let mut first_bad: Option<(usize, String)> = None;
        let mut offset = 0usize;
        let mut line_no = 0usize;
        let mut seen_header = false;
        let mut last_seq: Option<Seq> = None;

        while offset < content.len() {
            line_no += 1;
            let (line, next, complete) = match content[offset..].iter().position(|&b| b == b'\n') {
                Some(i) => (&content[offset..offset + i], offset + i + 1, true),
                None => (&content[offset..], content.len(), false),
            };
            let parsed = if complete {
                parse_line(line)
            } else {
                Err("no end of line".into())
            };
            match parsed {
                Err(reason) => {
                    if first_bad.is_none() {
                        first_bad = Some((line_no, reason));
                    }
                    self.recovery.torn_lines += 1;
                }
                Ok(entry) => {
                    if let Some((line, reason)) = first_bad {
                        return Err(self.corrupt(line, reason));
                    }
                    match entry {
                        EntryIn::Header { version, next_seq } => {
                            if seen_header || line_no != 1 {
                                return Err(self.corrupt(line_no, "second header".into()));
                            }
                            if version != VERSION {
                                return Err(self.corrupt(line_no, format!("version {version}")));
                            }
                            seen_header = true;
                            self.next_seq = self.next_seq.max(next_seq);
                        }
                        _ if !seen_header => {
                            return Err(self.corrupt(line_no, "no header".into()));
                        }
                        EntryIn::Record { seq, record } => {
                            if last_seq.is_some_and(|last| seq <= last) {
                                return Err(
                                    self.corrupt(line_no, format!("record {seq} out of order"))
                                );
                            }
                            last_seq = Some(seq);
                            self.next_seq = self.next_seq.max(seq.0 + 1);
                            self.pending.insert(seq, (offset as u64, next - offset));
                            records.insert(seq, *record);
                        }
                        EntryIn::Ack(seq) => {
                            if self.pending.remove(&seq).is_some() {
                                records.remove(&seq);
                                self.acked_in_file += 1;
                            } else {
                                self.recovery.orphan_acks += 1;
                            }
                        }
                    }
                    self.len = next as u64;
                }
            }
            offset = next;
        }
        Ok(records.into_iter().collect())
    }

    fn corrupt(&self, line: usize, reason: String) -> JournalError {
        JournalError::Corrupt {
            path: self.path.clone(),
            line,
            reason,
        }
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
        let mut lines = Vec::new();
        for (i, seq) in seqs.iter().enumerate() {
            if !self.pending.contains_key(seq) || seqs[..i].contains(seq) {
                return Err(JournalError::NotPending(*seq));
            }
            lines.extend(encode_line(&EntryOut::Ack(*seq)));
        }
        if lines.is_empty() {
            return Ok(());
        }
        self.write_synced(&lines, "ack")?;
        for seq in seqs {
            self.pending.remove(seq);
        }
        self.acked_in_file += seqs.len();
        if self.acked_in_file >= self.compact_after && self.acked_in_file >= self.pending.len() {
            // The acks are durable already; a failed compaction only leaves a longer file.
            if let Err(e) = self.compact() {
                tracing::warn!(error = %e, "accounting journal compaction failed");
            }
        }
        Ok(())
    }

    /// Rewrites the file with only the pending records: temp file, fsync, rename, fsync of the
    /// directory. A crash at any point leaves either the old or the new file, both complete.
    pub fn compact(&mut self) -> Result<(), JournalError> {
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
