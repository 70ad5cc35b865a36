//! What happened during a run, as the workload saw it: every write with its
//! outcome, every answer every node gave, every SOA serial, every fault.
//! The checker judges this record; the report prints it.

use std::net::Ipv4Addr;

use serde::Serialize;

use crate::scenario::FaultKind;

/// The zone the workload writes.
pub const ZONE: &str = "chaos.test.";

/// The value write `id` puts: `10.0.0.0 + id`, so every answer names the
/// write it came from.
pub fn value_of(id: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0A00_0000 | (id & 0x00FF_FFFF))
}

/// The write a value came from.
pub fn id_of(v: Ipv4Addr) -> Option<u32> {
    let bits = v.to_bits();
    (bits >> 24 == 10).then_some(bits & 0x00FF_FFFF)
}

/// How a write was sent.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// `Zones.Set` over gRPC.
    Grpc,
    /// RFC 2136 UPDATE with TSIG (BIND's nsupdate).
    Update,
}

/// What the client was told.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Acknowledged: it must survive.
    Acked,
    /// An error or no answer: it may or may not have been applied.
    Failed(String),
    /// Still running when the run ended.
    Pending,
}

/// One write.
#[derive(Clone, Debug, Serialize)]
pub struct WriteRec {
    /// Its number (and value, see [`value_of`]).
    pub id: u32,
    /// Owner name, relative to [`ZONE`].
    pub name: String,
    /// The node it was sent to.
    pub node: usize,
    /// How.
    pub method: Method,
    /// Seconds since the start when it was sent.
    pub issued_s: f64,
    /// When the answer (or the give-up) came.
    pub done_s: f64,
    /// The answer.
    pub outcome: Outcome,
}

/// What a node answered.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// A records.
    Values(Vec<Ipv4Addr>),
    /// The name does not exist.
    NxDomain,
    /// Another response code, or no answer.
    Error(String),
}

/// One query.
#[derive(Clone, Debug, Serialize)]
pub struct QueryRec {
    /// Seconds since the start.
    pub t_s: f64,
    /// The node asked.
    pub node: usize,
    /// Over TCP (else UDP).
    pub tcp: bool,
    /// Owner name, relative to [`ZONE`].
    pub name: String,
    /// What came back.
    pub answer: Answer,
}

/// One fault as it was carried out.
#[derive(Clone, Debug, Serialize)]
pub struct FaultRec {
    /// Its number in the plan.
    pub index: usize,
    /// What it was.
    pub kind: FaultKind,
    /// What it hit.
    pub target: String,
    /// When it began and ended (seconds since the start).
    pub start_s: f64,
    /// When it was healed.
    pub end_s: Option<f64>,
    /// `clock_offset`: seconds the node's clock was off (else 0).
    pub offset_s: i64,
    /// Anything of note (an error carrying it out, bytes filled).
    pub note: String,
}

/// The whole record.
#[derive(Debug, Default, Serialize)]
pub struct History {
    /// Every write.
    pub writes: Vec<WriteRec>,
    /// Every query answered or not.
    pub queries: Vec<QueryRec>,
    /// (seconds, node, serial) of each SOA poll answered.
    pub serials: Vec<(f64, usize, u32)>,
    /// Faults.
    pub faults: Vec<FaultRec>,
    /// Free-form events: starts, restarts, unexpected exits.
    pub events: Vec<(f64, String)>,
}

impl History {
    /// Notes an event.
    pub fn event(&mut self, t_s: f64, what: impl Into<String>) {
        self.events.push((t_s, what.into()));
    }

    /// Notes that fault `index` was healed at `t_s`, or why it could not be
    /// (a fault never injected has no record, and nothing is noted).
    pub fn healed(&mut self, index: usize, t_s: f64, result: Result<(), String>) {
        if let Some(rec) = self.faults.iter_mut().find(|r| r.index == index) {
            rec.end_s = Some(t_s);
            if let Err(e) = result {
                rec.note = format!("{} heal failed: {e}", rec.note).trim().to_owned();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_names_its_write() {
        for id in [0, 1, 255, 70_000, 0x00FF_FFFF] {
            assert_eq!(id_of(value_of(id)), Some(id));
        }
        assert_eq!(id_of(Ipv4Addr::new(192, 0, 2, 1)), None);
    }
}
