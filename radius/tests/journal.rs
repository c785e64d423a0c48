//! The outbox journal: reopen, torn writes, limits, compaction.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use vpnd_radius::{AccountingRecord, AcctStatus, Journal, JournalError, Seq};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("vpnd-radius-{}-{name}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("accounting.journal")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn rec(i: u64) -> AccountingRecord {
    AccountingRecord {
        user_name: Some(format!("user{i}")),
        input_octets: Some(i << 33),
        cisco_avpairs: vec!["connect-progress=No Progress".into()],
        ..AccountingRecord::new(
            AcctStatus::Stop,
            format!("{i:08}"),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000 + i),
        )
    }
}

fn lines(path: &PathBuf) -> usize {
    fs::read_to_string(path).unwrap().lines().count()
}

#[test]
fn pending_records_survive_a_reopen_in_order() {
    let dir = TempDir::new("reopen");
    let (mut j, pending) = Journal::open(dir.file(), 100).unwrap();
    assert!(pending.is_empty());
    let seqs: Vec<Seq> = (1..=3).map(|i| j.append(&rec(i)).unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    j.ack(seqs[1]).unwrap();
    assert_eq!(j.pending_len(), 2);
    drop(j);

    let (mut j, pending) = Journal::open(dir.file(), 100).unwrap();
    assert_eq!(pending, vec![(seqs[0], rec(1)), (seqs[2], rec(3))]);
    assert_eq!(j.pending_len(), 2);
    assert_eq!(j.recovery().torn_lines, 0);
    let next = j.append(&rec(4)).unwrap();
    assert!(next > seqs[2], "sequence numbers are not reused");
    assert!(matches!(j.ack(seqs[1]), Err(JournalError::NotPending(s)) if s == seqs[1]));
    assert!(matches!(
        j.ack_many(&[seqs[0], seqs[0]]),
        Err(JournalError::NotPending(_))
    ));
    assert_eq!(j.pending_len(), 3, "a refused ack_many acks nothing");
    j.ack_many(&[seqs[0], next]).unwrap();
    drop(j);
    let (_, pending) = Journal::open(dir.file(), 100).unwrap();
    assert_eq!(pending, vec![(seqs[2], rec(3))]);
}

#[test]
fn torn_last_line_is_skipped_and_cut_off() {
    let dir = TempDir::new("torn");
    let (mut j, _) = Journal::open(dir.file(), 100).unwrap();
    j.append(&rec(1)).unwrap();
    j.append(&rec(2)).unwrap();
    drop(j);
    // A crash in the middle of the third append: half a line, no newline.
    let full = fs::read(dir.file()).unwrap();
    let last_line_start = full[..full.len() - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1;
    let torn = full[last_line_start..full.len() / 2 + last_line_start / 2].to_vec();
    OpenOptions::new()
        .append(true)
        .open(dir.file())
        .unwrap()
        .write_all(&torn)
        .unwrap();

    let (mut j, pending) = Journal::open(dir.file(), 100).unwrap();
    assert_eq!(
        pending.iter().map(|p| p.1.clone()).collect::<Vec<_>>(),
        vec![rec(1), rec(2)]
    );
    assert_eq!(j.recovery().torn_lines, 1);
    assert_eq!(fs::read(dir.file()).unwrap(), full, "torn tail cut off");
    let saved = fs::read(dir.0.join("accounting.journal.corrupt")).unwrap();
    assert!(
        saved.ends_with(&[&torn[..], b"\n"].concat()),
        "and saved aside"
    );
    // Appending after the repair leaves a valid file.
    j.append(&rec(3)).unwrap();
    drop(j);
    let (j, pending) = Journal::open(dir.file(), 100).unwrap();
    assert_eq!(pending.len(), 3);
    assert_eq!(j.recovery().torn_lines, 0);
}

#[test]
fn complete_last_line_with_bad_crc_counts_as_torn() {
    let dir = TempDir::new("badcrc");
    let (mut j, _) = Journal::open(dir.file(), 100).unwrap();
    j.append(&rec(1)).unwrap();
    j.append(&rec(2)).unwrap();
    drop(j);
    let mut bytes = fs::read(dir.file()).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x20; // inside the last record's JSON
    fs::write(dir.file(), &bytes).unwrap();
    let (j, pending) = Journal::open(dir.file(), 100).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1, rec(1));
    assert_eq!(j.recovery().torn_lines, 1);
}

/// The journal's lines, with line 3 (the second record) made to fail its CRC.
fn corrupt_line_3(dir: &TempDir) -> Vec<String> {
    let (mut j, _) = Journal::open(dir.file(), 100).unwrap();
    for i in 1..=3 {
        j.append(&rec(i)).unwrap();
    }
    drop(j);
    let text = fs::read_to_string(dir.file()).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[2] = lines[2].replace("user2", "userX");
    fs::write(dir.file(), lines.join("\n") + "\n").unwrap();
    lines
}

#[test]
fn corruption_in_the_middle_keeps_the_valid_records_and_moves_the_line_aside() {
    let dir = TempDir::new("corrupt");
    let lines = corrupt_line_3(&dir);
    let (mut j, pending) = Journal::open(dir.file(), 100).unwrap();
    assert_eq!(
        pending.iter().map(|p| p.1.clone()).collect::<Vec<_>>(),
        vec![rec(1), rec(3)],
        "every valid record is kept"
    );
    let r = j.recovery().clone();
    assert_eq!((r.corrupt_lines, r.torn_lines), (1, 0));
    let aside = dir.0.join("accounting.journal.corrupt");
    assert_eq!(r.corrupt_file.as_deref(), Some(aside.as_path()));
    let saved = fs::read_to_string(&aside).unwrap();
    assert!(
        saved.contains(" line 3 (corrupt): CRC mismatch\n"),
        "{saved}"
    );
    assert!(
        saved.contains(&format!("\n{}\n", lines[2])),
        "the line as it was"
    );
    assert_eq!(lines_of(&dir), 1 + 2, "rewritten without it");
    j.append(&rec(4)).unwrap();
    drop(j);
    let (j, pending) = Journal::open(dir.file(), 100).unwrap();
    assert_eq!(pending.len(), 3);
    assert_eq!(j.recovery().corrupt_lines, 0, "repaired for good");
    assert_eq!(fs::read_to_string(&aside).unwrap(), saved, "saved once");
}

fn lines_of(dir: &TempDir) -> usize {
    lines(&dir.file())
}

#[test]
fn a_corrupt_ack_sends_its_record_again() {
    let dir = TempDir::new("corrupt-ack");
    let (mut j, _) = Journal::open(dir.file(), 100).unwrap();
    let a = j.append(&rec(1)).unwrap();
    j.append(&rec(2)).unwrap();
    j.ack(a).unwrap();
    j.append(&rec(3)).unwrap();
    drop(j);
    let text = fs::read_to_string(dir.file()).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    assert!(lines[3].contains("\"ack\""), "{}", lines[3]);
    lines[3] = lines[3].replacen('a', "b", 1); // the CRC field of the ack
    fs::write(dir.file(), lines.join("\n") + "\n").unwrap();
    let (j, pending) = Journal::open(dir.file(), 100).unwrap();
    assert_eq!(j.recovery().corrupt_lines, 1);
    assert_eq!(
        pending.into_iter().map(|p| p.1).collect::<Vec<_>>(),
        vec![rec(1), rec(2), rec(3)],
        "a duplicate, never a loss"
    );
}

#[test]
fn misplaced_valid_lines_are_moved_aside_too() {
    let dir = TempDir::new("misplaced");
    let (mut j, _) = Journal::open(dir.file(), 100).unwrap();
    j.append(&rec(1)).unwrap();
    j.append(&rec(2)).unwrap();
    drop(j);
    let text = fs::read_to_string(dir.file()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // The header again, and the first record again (its sequence number goes backwards).
    let doubled = [lines[0], lines[1], lines[0], lines[2], lines[1]].join("\n") + "\n";
    fs::write(dir.file(), doubled).unwrap();
    let (j, pending) = Journal::open(dir.file(), 100).unwrap();
    assert_eq!(j.recovery().corrupt_lines, 2);
    assert_eq!(pending.len(), 2);
    let saved = fs::read_to_string(dir.0.join("accounting.journal.corrupt")).unwrap();
    assert!(saved.contains("line 3 (corrupt): a header after the first line"));
    assert!(saved.contains("line 5 (corrupt): record 1 out of order"));
}

#[test]
fn corrupt_lines_that_cannot_be_saved_leave_the_file_as_it_is() {
    let dir = TempDir::new("corrupt-unsaved");
    let lines = corrupt_line_3(&dir);
    let before = fs::read(dir.file()).unwrap();
    // `.corrupt` cannot be opened for appending.
    let aside = dir.0.join("accounting.journal.corrupt");
    fs::create_dir(&aside).unwrap();
    let (mut j, pending) = Journal::open(dir.file(), 100).unwrap();
    assert_eq!(pending.len(), 2, "the valid records are there all the same");
    assert_eq!(j.recovery().corrupt_lines, 1);
    assert_eq!(j.recovery().corrupt_file, None);
    assert_eq!(fs::read(dir.file()).unwrap(), before, "left as it is");
    assert!(j.compact().is_err(), "no compaction drops unsaved lines");
    let s = j.append(&rec(4)).unwrap();
    j.ack(s).unwrap();
    fs::remove_dir(&aside).unwrap();
    j.compact().unwrap();
    assert!(fs::read_to_string(&aside).unwrap().contains(&lines[2]));
    assert_eq!(lines_of(&dir), 1 + 2);
    drop(j);
    let (j, pending) = Journal::open(dir.file(), 100).unwrap();
    assert_eq!((pending.len(), j.recovery().corrupt_lines), (2, 0));
}

#[test]
fn another_format_version_is_refused_and_left_untouched() {
    let dir = TempDir::new("version");
    let (mut j, _) = Journal::open(dir.file(), 100).unwrap();
    j.append(&rec(1)).unwrap();
    drop(j);
    let text = fs::read_to_string(dir.file()).unwrap();
    let json = r#"{"header":{"version":2,"next_seq":1}}"#;
    let header = format!("{:08x}\t{json}", crc32fast::hash(json.as_bytes()));
    let rest: Vec<&str> = text.lines().skip(1).collect();
    let changed = format!("{header}\n{}\n", rest.join("\n"));
    fs::write(dir.file(), &changed).unwrap();
    match Journal::open(dir.file(), 100) {
        Err(JournalError::Version { version, .. }) => assert_eq!(version, 2),
        other => panic!("expected Version, got {other:?}"),
    }
    assert_eq!(fs::read_to_string(dir.file()).unwrap(), changed);
}

#[test]
fn replace_appends_and_acks_in_one_write() {
    let dir = TempDir::new("replace");
    let (mut j, _) = Journal::open(dir.file(), 3).unwrap();
    let old = j.append_many(&[rec(1), rec(2)]).unwrap();
    let before = lines_of(&dir);
    let new = j.replace(&[rec(3), rec(4)], &old[..1]).unwrap();
    assert_eq!(new.len(), 2);
    assert_eq!(lines_of(&dir), before + 3);
    assert!(!j.is_pending(old[0]) && j.is_pending(old[1]) && j.is_pending(new[1]));
    assert!(
        matches!(
            j.replace(&[rec(5)], &[]),
            Err(JournalError::Full { limit: 3 })
        ),
        "the limit counts what is removed as gone"
    );
    assert!(matches!(
        j.replace(&[rec(5)], &[old[0]]),
        Err(JournalError::NotPending(_))
    ));
    assert_eq!(
        lines_of(&dir),
        before + 3,
        "a refused replace writes nothing"
    );
    j.replace(&[rec(5)], &[old[1]]).unwrap();
    drop(j);
    let (_, pending) = Journal::open(dir.file(), 3).unwrap();
    assert_eq!(
        pending.into_iter().map(|p| p.1).collect::<Vec<_>>(),
        vec![rec(3), rec(4), rec(5)]
    );
}

#[test]
fn full_at_the_limit() {
    let dir = TempDir::new("full");
    let (mut j, _) = Journal::open(dir.file(), 2).unwrap();
    let a = j.append(&rec(1)).unwrap();
    j.append(&rec(2)).unwrap();
    assert!(matches!(
        j.append(&rec(3)),
        Err(JournalError::Full { limit: 2 })
    ));
    assert_eq!(j.pending_len(), 2);
    j.ack(a).unwrap();
    j.append(&rec(3)).unwrap();
    drop(j);
    let (_, pending) = Journal::open(dir.file(), 2).unwrap();
    assert_eq!(
        pending.into_iter().map(|p| p.1).collect::<Vec<_>>(),
        vec![rec(2), rec(3)]
    );
}

#[test]
fn compaction_keeps_the_pending_records() {
    let dir = TempDir::new("compact");
    let (mut j, _) = Journal::open(dir.file(), 100).unwrap();
    j.set_compact_after(3);
    let seqs: Vec<Seq> = (1..=5).map(|i| j.append(&rec(i)).unwrap()).collect();
    j.ack(seqs[0]).unwrap();
    j.ack(seqs[2]).unwrap();
    assert_eq!(lines(&dir.file()), 1 + 5 + 2, "not compacted yet");
    j.ack(seqs[3]).unwrap(); // 3 delivered >= 2 pending: compacts
    assert_eq!(
        lines(&dir.file()),
        1 + 2,
        "header and the two pending records"
    );
    assert!(!dir.0.join("accounting.journal.tmp").exists());
    let after = j.append(&rec(6)).unwrap();
    drop(j);

    let (mut j, pending) = Journal::open(dir.file(), 100).unwrap();
    assert_eq!(
        pending,
        vec![(seqs[1], rec(2)), (seqs[4], rec(5)), (after, rec(6))]
    );
    // Sequence numbers keep growing across compaction, even when nothing is pending.
    j.ack_many(&[seqs[1], seqs[4], after]).unwrap();
    j.compact().unwrap();
    assert_eq!(lines(&dir.file()), 1);
    drop(j);
    let (mut j, pending) = Journal::open(dir.file(), 100).unwrap();
    assert!(pending.is_empty());
    assert!(j.append(&rec(7)).unwrap() > after);
}

#[test]
fn stale_compaction_file_is_removed() {
    let dir = TempDir::new("stale");
    let (mut j, _) = Journal::open(dir.file(), 100).unwrap();
    j.append(&rec(1)).unwrap();
    drop(j);
    let temp = dir.0.join("accounting.journal.tmp");
    fs::write(&temp, b"half a compaction").unwrap();
    let (j, pending) = Journal::open(dir.file(), 100).unwrap();
    assert_eq!(pending.len(), 1);
    assert!(j.recovery().stale_temp);
    assert!(!temp.exists());
}

#[test]
fn journal_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("mode");
    let _ = Journal::open(dir.file(), 1).unwrap();
    let mode = fs::metadata(dir.file()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn append_many_is_one_batch_up_to_the_limit() {
    let dir = TempDir::new("many");
    let (mut j, _) = Journal::open(dir.file(), 3).unwrap();
    j.append(&rec(1)).unwrap();
    let seqs = j.append_many(&[rec(2), rec(3), rec(4)]).unwrap();
    assert_eq!(seqs.len(), 2, "only the room left is taken");
    assert!(matches!(
        j.append_many(&[rec(5)]),
        Err(JournalError::Full { limit: 3 })
    ));
    drop(j);
    let (_, pending) = Journal::open(dir.file(), 3).unwrap();
    let ids: Vec<String> = pending
        .iter()
        .map(|(_, r)| r.acct_session_id.clone())
        .collect();
    assert_eq!(ids, ["00000001", "00000002", "00000003"]);
}

/// A small tmpfs (root only; skipped with the reason otherwise), unmounted on drop.
struct SmallFs(TempDir);

impl SmallFs {
    fn mount(name: &str, size: &str) -> Option<SmallFs> {
        let dir = TempDir::new(name);
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir.0)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallFs(dir)),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    /// Fills the file system; returns the filler.
    fn fill(&self) -> PathBuf {
        let filler = self.0 .0.join("filler");
        let mut f = fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.write_all(&block[..1]); // the last partial block
        filler
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.0 .0)
            .status();
    }
}

#[test]
fn a_write_on_a_full_disk_fails_whole_and_leaves_the_file_as_it_was() {
    let Some(small) = SmallFs::mount("enospc", "64k") else {
        return;
    };
    let path = small.0 .0.join("accounting.journal");
    let (mut j, _) = Journal::open(&path, 1000).unwrap();
    let first = j.append(&rec(1)).unwrap();
    let filler = small.fill();
    let before = fs::read(&path).unwrap();
    let many: Vec<AccountingRecord> = (2..40).map(rec).collect();
    assert!(matches!(j.append_many(&many), Err(JournalError::Io { .. })));
    assert_eq!(fs::read(&path).unwrap(), before, "no partial line left");
    assert_eq!(j.pending_len(), 1);
    fs::remove_file(&filler).unwrap();
    let seqs = j.append_many(&many).unwrap();
    j.ack(first).unwrap();
    drop(j);
    let (j, pending) = Journal::open(&path, 1000).unwrap();
    assert_eq!(pending.len(), many.len());
    assert_eq!(pending[0].0, seqs[0]);
    assert_eq!(
        (j.recovery().torn_lines, j.recovery().corrupt_lines),
        (0, 0)
    );
}
