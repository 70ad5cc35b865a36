//! A full disk: appends fail with a clear error, nothing torn stays in the
//! log, and what was acknowledged before is still recovered. Needs root to
//! mount a small tmpfs (CI runs as root).
#![allow(clippy::unwrap_used)]

use std::process::Command;

use meshdns_replication::journal::Journal;

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_refuses_the_write_and_keeps_what_was_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let ok = Command::new("mount").args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"]).arg(&mnt).status().unwrap();
    assert!(ok.success(), "mounting a tmpfs failed: this test needs root");
    let _m = Mount(mnt.clone());

    let (mut j, _) = Journal::open(&mnt).unwrap();
    let acknowledged: Vec<Vec<u8>> = (0..10).map(|i| format!("write {i}").into_bytes()).collect();
    j.append(&acknowledged).unwrap();
    // 40 KiB at a time until the disk is full.
    let big = vec![vec![7u8; 40 * 1024]];
    let mut refused = None;
    for _ in 0..4 {
        if let Err(e) = j.append(&big) {
            refused = Some(e);
            break;
        }
    }
    let err = refused.expect("a 64 KiB disk refuses 160 KiB").to_string();
    assert!(err.contains("No space left on device") && err.contains("journal.log"), "{err}");
    let len_after_refusal = j.log_len();
    drop(j);
    let (_, rec) = Journal::open(&mnt).unwrap();
    assert_eq!(rec.truncated, 0, "the refused append left nothing torn behind");
    assert_eq!(&rec.payloads[..10], &acknowledged[..]);
    let on_disk = std::fs::metadata(mnt.join("journal.log")).unwrap().len();
    assert_eq!(on_disk, len_after_refusal);
}
