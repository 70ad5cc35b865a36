//! A string that must never be printed: tokens and TSIG secrets.
//!
//! `Debug` and `Display` print `[redacted]`, so a secret held in a
//! [`Secret`] cannot reach `meshdns config check`, a log line or an error
//! message by accident; code that needs the value calls
//! [`Secret::expose`] and says so at the call site.

/// A secret string whose `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself; never format it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let s = Secret::new("hunter2-hunter2-hunter2");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{s:?} {s:#?}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "hunter2-hunter2-hunter2");
    }
}
