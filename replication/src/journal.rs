//! The durable journal: what a node has applied, on disk, so a restart
//! recovers exactly the acknowledged state.
//!
//! Two files in one directory:
//!
//! - `journal.log`: frames appended as writes are applied. A write is
//!   acknowledged only after [`Journal::append`] returned, which is after
//!   `fdatasync`. Several writes appended in one call share one sync (group
//!   commit).
//! - `snapshot.bin`: frames of a snapshot of every zone, written to a
//!   temporary file, synced, and renamed over the old one by
//!   [`Journal::compact`], which then empties the log.
//!
//! A frame is `length (u32 LE) | xxh3-64 of the payload (u64 LE) | payload`,
//! the payload an encoded [`wire`](crate::wire) message. Recovery reads the
//! snapshot, then the log, up to the first frame that is cut short or fails
//! its checksum: a crash during an append leaves at most one such frame,
//! never acknowledged, and it is cut off. Because applying is idempotent, a
//! crash between the rename and the emptying of the log is harmless: the
//! log's frames are applied again on top of the snapshot that holds them.
//!
//! Everything here is plain `std::fs`; the simulator keeps state in memory.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

const LOG: &str = "journal.log";
const SNAPSHOT: &str = "snapshot.bin";
/// Where compactions wrote before [`write_durably`]; removed if found.
const SNAPSHOT_TMP: &str = "snapshot.tmp";
const HEADER: usize = 12;
/// Largest frame accepted on recovery (a corrupt length must not make the
/// node allocate gigabytes).
pub const MAX_FRAME: usize = 256 * 1024 * 1024;

/// What was read back at open.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Payloads of the snapshot, then of the log, in order.
    pub payloads: Vec<Vec<u8>>,
    /// Frames that came from the snapshot file (the first ones).
    pub from_snapshot: usize,
    /// Bytes cut from the end of the log: a torn append (or corruption).
    pub truncated: u64,
}

/// Why the journal could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The snapshot file is damaged (it is written whole and renamed, so
    /// this means the disk or someone else damaged it).
    #[error("{path}: damaged snapshot at byte {offset}; move it away to start from the log and peers")]
    Damaged {
        /// File.
        path: PathBuf,
        /// Where.
        offset: u64,
    },
}

/// An open journal.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    log: File,
    /// Length of the log up to the last complete frame.
    len: u64,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io { path: path.to_owned(), source }
}

fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Reads frames from `bytes`; returns them and the length of the valid
/// prefix.
fn read_frames(bytes: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= HEADER {
        let mut len = [0u8; 4];
        len.copy_from_slice(&bytes[at..at + 4]);
        let len = u32::from_le_bytes(len) as usize;
        let mut sum = [0u8; 8];
        sum.copy_from_slice(&bytes[at + 4..at + HEADER]);
        let sum = u64::from_le_bytes(sum);
        if len > MAX_FRAME || bytes.len() - at - HEADER < len {
            break;
        }
        let payload = &bytes[at + HEADER..at + HEADER + len];
        if xxhash_rust::xxh3::xxh3_64(payload) != sum {
            break;
        }
        out.push(payload.to_vec());
        at += HEADER + len;
    }
    (out, at)
}

/// Replaces `path` with `parts` (written one after another) so that a
/// crash leaves either the old file or the new one, never a torn or
/// empty one, and a rename that returned survives a power loss: a
/// temporary file beside it is written and fsynced, renamed over `path`,
/// then the directory is fsynced. On error `path` is untouched and the
/// temporary file removed.
///
/// Every piece of node state kept in a small file (the journal's
/// snapshot, zone snapshots, the node generation, the journal epoch, the
/// last imported zone files) is written through this one function.
pub fn write_durably(path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        for p in parts {
            f.write_all(p)?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

impl Journal {
    /// Opens (or creates) the journal in `dir` and reads back what it holds.
    pub fn open(dir: &Path) -> Result<(Journal, Recovered), JournalError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut rec = Recovered::default();
        let snap_path = dir.join(SNAPSHOT);
        match std::fs::read(&snap_path) {
            Ok(bytes) => {
                let (frames, valid) = read_frames(&bytes);
                if valid != bytes.len() {
                    return Err(JournalError::Damaged { path: snap_path, offset: valid as u64 });
                }
                rec.from_snapshot = frames.len();
                rec.payloads = frames;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&snap_path)(e)),
        }
        // An interrupted compaction (this version's temporary name, and
        // that of earlier ones).
        let _ = std::fs::remove_file(dir.join(SNAPSHOT_TMP));
        let leftover = format!(".{SNAPSHOT}.tmp.");
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(&leftover) {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let log_path = dir.join(LOG);
        let mut log =
            OpenOptions::new().read(true).append(true).create(true).open(&log_path).map_err(io_err(&log_path))?;
        let mut bytes = Vec::new();
        log.read_to_end(&mut bytes).map_err(io_err(&log_path))?;
        let (frames, valid) = read_frames(&bytes);
        rec.payloads.extend(frames);
        if valid < bytes.len() {
            rec.truncated = (bytes.len() - valid) as u64;
            log.set_len(valid as u64).map_err(io_err(&log_path))?;
            log.sync_data().map_err(io_err(&log_path))?;
        }
        log.seek(SeekFrom::End(0)).map_err(io_err(&log_path))?;
        Ok((Journal { dir: dir.to_owned(), log, len: valid as u64 }, rec))
    }

    /// Appends payloads and syncs them to disk. On error (a full disk)
    /// nothing of this call stays in the log, and none of it may be
    /// acknowledged.
    pub fn append(&mut self, payloads: &[Vec<u8>]) -> Result<(), JournalError> {
        let mut buf = Vec::with_capacity(payloads.iter().map(|p| p.len() + HEADER).sum());
        for p in payloads {
            frame(p, &mut buf);
        }
        let path = self.dir.join(LOG);
        let written = self.log.write_all(&buf).and_then(|()| self.log.sync_data());
        if let Err(e) = written {
            // Cut back to the last complete frame, so a later append does
            // not follow a torn one.
            let _ = self.log.set_len(self.len);
            let _ = self.log.seek(SeekFrom::End(0));
            return Err(io_err(&path)(e));
        }
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Bytes in the log since the last compaction.
    pub fn log_len(&self) -> u64 {
        self.len
    }

    /// Replaces the snapshot with `payloads` (the whole state) and empties
    /// the log. On error the previous snapshot and the log are untouched.
    pub fn compact(&mut self, payloads: &[Vec<u8>]) -> Result<(), JournalError> {
        let mut buf = Vec::new();
        for p in payloads {
            frame(p, &mut buf);
        }
        let snap = self.dir.join(SNAPSHOT);
        write_durably(&snap, &[&buf]).map_err(io_err(&snap))?;
        let log = self.dir.join(LOG);
        self.log.set_len(0).and_then(|()| self.log.sync_data()).map_err(io_err(&log))?;
        self.log.seek(SeekFrom::End(0)).map_err(io_err(&log))?;
        self.len = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("payload {i}").into_bytes()).collect()
    }

    #[test]
    fn what_was_appended_comes_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        let (mut j, rec) = Journal::open(&dir).unwrap();
        assert!(rec.payloads.is_empty());
        j.append(&payloads(3)).unwrap();
        j.append(&payloads(2)).unwrap();
        drop(j);
        let (_, rec) = Journal::open(&dir).unwrap();
        assert_eq!(rec.payloads.len(), 5);
        assert_eq!(rec.payloads[4], b"payload 1");
        assert_eq!(rec.truncated, 0);
    }

    #[test]
    fn a_torn_tail_is_cut_and_later_appends_follow_the_last_good_frame() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        let (mut j, _) = Journal::open(&dir).unwrap();
        j.append(&payloads(4)).unwrap();
        drop(j);
        // A crash mid-append: half a frame at the end.
        let log = dir.join(LOG);
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        let mut half = Vec::new();
        frame(b"never acknowledged", &mut half);
        f.write_all(&half[..half.len() / 2]).unwrap();
        drop(f);
        let (mut j, rec) = Journal::open(&dir).unwrap();
        assert_eq!(rec.payloads.len(), 4);
        assert!(rec.truncated > 0);
        j.append(&[b"after".to_vec()]).unwrap();
        drop(j);
        let (_, rec) = Journal::open(&dir).unwrap();
        assert_eq!(rec.payloads.len(), 5);
        assert_eq!(rec.payloads[4], b"after");
        assert_eq!(rec.truncated, 0);
    }

    #[test]
    fn a_flipped_bit_stops_recovery_there() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        let (mut j, _) = Journal::open(&dir).unwrap();
        j.append(&payloads(3)).unwrap();
        drop(j);
        let log = dir.join(LOG);
        let mut bytes = std::fs::read(&log).unwrap();
        let second = HEADER + b"payload 0".len() + HEADER + 2;
        bytes[second] ^= 0x40;
        std::fs::write(&log, &bytes).unwrap();
        let (_, rec) = Journal::open(&dir).unwrap();
        assert_eq!(rec.payloads, vec![b"payload 0".to_vec()]);
    }

    #[test]
    fn compaction_replaces_the_snapshot_and_empties_the_log() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        let (mut j, _) = Journal::open(&dir).unwrap();
        j.append(&payloads(10)).unwrap();
        j.compact(&[b"state".to_vec()]).unwrap();
        assert_eq!(j.log_len(), 0);
        j.append(&[b"later".to_vec()]).unwrap();
        drop(j);
        let (_, rec) = Journal::open(&dir).unwrap();
        assert_eq!(rec.payloads, vec![b"state".to_vec(), b"later".to_vec()]);
        assert_eq!(rec.from_snapshot, 1);
        // A damaged snapshot is an error that says what to do.
        std::fs::write(dir.join(SNAPSHOT), b"garbage that is not a frame").unwrap();
        let err = Journal::open(&dir).unwrap_err().to_string();
        assert!(err.contains("damaged snapshot") && err.contains("move it away"), "{err}");
    }

    /// `write_durably` replaces the file whole and leaves no temporary
    /// file; when it fails (no such directory) nothing is left behind.
    #[test]
    fn write_durably_replaces_whole_files_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_durably(&path, &[b"first"]).unwrap();
        write_durably(&path, &[b"sec", b"ond"]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        assert_eq!(names, vec!["state".to_owned()], "no temporary file is left");
        let missing = dir.path().join("missing").join("state");
        assert!(write_durably(&missing, &[b"x"]).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
    }
}
