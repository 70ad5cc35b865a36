//! `meshdns audit tail|search`: reads the audit log files (the live one
//! and its rotations); talks to no node.

use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::audit::{Entry, Filter, parse_since, read_all, rotated};
use crate::cli::{AuditCommand, Output};

/// How often `tail --follow` looks for new entries.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// Runs `cmd` on the log at `file`; `now_ms` anchors `--since 10m`.
/// `Ok(false)`: a search found nothing (exit status 1, like grep).
pub fn run(cmd: &AuditCommand, file: &Path, now_ms: u64) -> Result<bool> {
    let out = &mut std::io::stdout().lock();
    match cmd {
        AuditCommand::Tail { lines, follow, source } => {
            if !file.exists() && !*follow {
                bail!("no audit log at {} yet (nothing audited, or pass --file / --data-dir)", file.display());
            }
            let (entries, _) = read(file)?;
            for e in &entries[entries.len().saturating_sub(*lines)..] {
                print(out, e, source.output)?;
            }
            out.flush()?;
            if *follow {
                follow_file(out, file, source.output)?;
            }
            Ok(true)
        }
        AuditCommand::Search { zone, actor, action, since, source } => {
            let since_ms = match since {
                Some(s) => Some(parse_since(s, now_ms).with_context(|| {
                    format!("--since {s:?}: expected 2026-12-05T17:00:00Z, 2026-12-05, Unix seconds, or 30s/10m/2h/7d")
                })?),
                None => None,
            };
            let filter = Filter { zone: zone.clone(), actor: actor.clone(), action: action.clone(), since_ms };
            if !file.exists() {
                bail!("no audit log at {} yet (nothing audited, or pass --file / --data-dir)", file.display());
            }
            let (entries, _) = read(file)?;
            let mut found = false;
            for e in entries.iter().filter(|e| filter.matches(e)) {
                found = true;
                print(out, e, source.output)?;
            }
            Ok(found)
        }
    }
}

fn read(file: &Path) -> Result<(Vec<Entry>, usize)> {
    let (entries, bad) = read_all(file).with_context(|| format!("reading the audit log {}", file.display()))?;
    if bad > 0 {
        eprintln!("meshdns: {bad} line(s) of the audit log are not entries (skipped)");
    }
    Ok((entries, bad))
}

fn print(out: &mut impl Write, e: &Entry, output: Output) -> Result<()> {
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string(e)?)?,
        Output::Table => {
            write!(
                out,
                "{} {:<6} {:<20} {:<11} {}",
                e.time,
                e.result,
                e.actor,
                e.action,
                e.zone.as_deref().unwrap_or("-")
            )?;
            if let Some(p) = &e.peer {
                write!(out, " from {p}")?;
            }
            if !e.detail.is_empty() {
                write!(out, ": {}", e.detail)?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}

/// Prints what is appended to `file` from its current end, following it
/// across rotations (the rest of the renamed file first), until killed.
fn follow_file(out: &mut impl Write, file: &Path, output: Output) -> Result<()> {
    let mut at = std::fs::metadata(file).map(|m| (m.ino(), m.len())).ok();
    loop {
        std::thread::sleep(FOLLOW_EVERY);
        let now = std::fs::metadata(file).map(|m| (m.ino(), m.len())).ok();
        match (at, now) {
            (Some((ino, off)), Some((ino2, len))) if ino == ino2 => {
                if len > off {
                    at = Some((ino, off + print_from(out, file, off, output)?));
                }
            }
            (Some((ino, off)), _) => {
                // Rotated: the rest of the old file is now FILE.1.
                let old = rotated(file, 1);
                if std::fs::metadata(&old).is_ok_and(|m| m.ino() == ino) {
                    print_from(out, &old, off, output)?;
                }
                if let Some((ino2, _)) = now {
                    at = Some((ino2, print_from(out, file, 0, output)?));
                } else {
                    at = None;
                }
            }
            (None, Some((ino2, _))) => at = Some((ino2, print_from(out, file, 0, output)?)),
            (None, None) => {}
        }
        out.flush()?;
    }
}

/// Prints the complete lines of `file` after `offset`; the bytes read.
fn print_from(out: &mut impl Write, file: &Path, offset: u64, output: Output) -> Result<u64> {
    let mut f = std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
    f.seek(std::io::SeekFrom::Start(offset))?;
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    // A line still being written (no newline yet) is read next time.
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    for line in text[..complete].lines() {
        if let Ok(e) = serde_json::from_str::<Entry>(line) {
            print(out, &e, output)?;
        }
    }
    Ok(complete as u64)
}
