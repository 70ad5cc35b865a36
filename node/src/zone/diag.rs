//! Zone diagnostics: what `meshdns zone check` prints and a failed load reports.
//!
//! Every message is `file:line: severity: text` (line 0 when the problem is
//! the file as a whole), like a compiler's, so editors can jump to it.

use std::fmt;
use std::path::{Path, PathBuf};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The zone is rejected.
    Error,
    /// The zone loads; the record in question may be ignored (the text says).
    Warning,
}

/// One finding about a zone file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, or 0 for the whole file.
    pub line: u32,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, quoting the input.
    pub text: String,
}

impl Diagnostic {
    /// An error at `line`.
    pub fn error(file: &Path, line: u32, text: String) -> Self {
        Diagnostic { file: file.to_owned(), line, severity: Severity::Error, text }
    }
    /// A warning at `line`.
    pub fn warning(file: &Path, line: u32, text: String) -> Self {
        Diagnostic { file: file.to_owned(), line, severity: Severity::Warning, text }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}:{}: {}: {}", self.file.display(), self.line, sev, self.text)
    }
}

/// A zone that could not be compiled: its errors (and any warnings found
/// before them). Nothing was written; a previously loaded version, if any,
/// keeps serving.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ZoneError {
    /// Errors first, then context lines (e.g. the `$INCLUDE` that led there).
    pub diagnostics: Vec<Diagnostic>,
}

impl ZoneError {
    /// One error.
    pub fn single(d: Diagnostic) -> Self {
        ZoneError { diagnostics: vec![d] }
    }
    /// Adds a context line (shown after the error).
    pub fn with_context(mut self, d: Diagnostic) -> Self {
        self.diagnostics.push(d);
        self
    }
}

impl fmt::Display for ZoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}
