//! The one writer of the Prometheus text exposition format (version 0.0.4)
//! that every part of `/metrics` goes through.
//!
//! The counters themselves stay where they are kept (sharded atomics in
//! [`crate::metrics`], the mesh snapshot, the replication stats); each
//! renderer declares a family once with [`Exposition::family`], which
//! writes `# HELP` and `# TYPE`, then adds samples with
//! [`Exposition::sample`], which escapes every label value. So a zone named
//! `a"b\c` or one with a newline in it still produces valid exposition,
//! and a family's type is stated in one place.
//!
//! Format rules followed (Prometheus "Exposition formats", text format):
//! label values escape `\`, `"` and line feed; HELP text escapes `\` and
//! line feed; a counter's name ends in `_total`; a histogram's samples are
//! `_bucket` (with `le`, cumulative, ending in `+Inf`), `_sum` and `_count`.

use std::fmt::{Display, Write};

/// A metric family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only ever goes up (until a restart).
    Counter,
    /// A value that can go up and down: a snapshot or a level.
    Gauge,
    /// Cumulative buckets of observations, with `_sum` and `_count`.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A `/metrics` page being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty page.
    pub fn new() -> Self {
        Exposition { out: String::with_capacity(8192) }
    }

    /// Declares a family: `# HELP` then `# TYPE`. Call once per name,
    /// before its samples.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(kind != Kind::Counter || name.ends_with("_total"), "counter {name} must end in _total");
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        let _ = writeln!(self.out, "\n# TYPE {name} {}", kind.as_str());
    }

    /// One sample: `name{label="value",...} value`, label values escaped.
    /// `name` is the family's name, or for a histogram the family's name
    /// with `_bucket`, `_sum` or `_count`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_label_into(v, &mut self.out);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// The page.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Appends `v` escaped as a label value.
fn escape_label_into(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut e = Exposition::new();
        e.family("x_total", Kind::Counter, "a \\ and\na line");
        e.sample("x_total", &[("zone", "a\"b\\c\nd."), ("k", "v")], 3);
        e.sample("x_total", &[], 1.5);
        assert_eq!(
            e.finish(),
            "# HELP x_total a \\\\ and\\na line\n# TYPE x_total counter\n\
             x_total{zone=\"a\\\"b\\\\c\\nd.\",k=\"v\"} 3\nx_total 1.5\n"
        );
    }
}
