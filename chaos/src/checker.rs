//! The checker: judges a run's [`History`] and the cluster's final state.
//!
//! - every node's digest of the zone is the same, and every node holds
//!   every other node alive;
//! - every acknowledged write is answered by every node: its own value for
//!   a name written once, and for a name written several times one value
//!   all nodes agree on that came from a write to that name (last writer
//!   wins: a later write may replace an acknowledged one, nothing else
//!   may);
//! - no node ever answered a value that was not written to that name
//!   before the query, nor two values at once (a write replaces the RRset);
//! - no node's SOA serial ever went backwards.
//!
//! Each violation carries the history of what it concerns.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::history::{Answer, History, Outcome, id_of};
use crate::scenario::FaultKind;

/// One broken rule, with what led to it.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    /// Which rule.
    pub check: &'static str,
    /// What was wrong.
    pub message: String,
    /// The history of the name or node concerned.
    pub history: Vec<String>,
}

/// The cluster's state after the final heal and settle.
#[derive(Debug, Default, Serialize)]
pub struct FinalState {
    /// Node names.
    pub names: Vec<String>,
    /// Each node's zone digest (an error as text).
    pub digests: Vec<Result<Option<String>, String>>,
    /// Each node's alive members.
    pub members: Vec<Result<Vec<String>, String>>,
    /// (node, label) → answer.
    pub answers: BTreeMap<(usize, String), Answer>,
}

/// Every violation in `h` and `fin`.
pub fn check(h: &History, fin: &FinalState) -> Vec<Violation> {
    let mut out = Vec::new();
    let by_label = writes_by_label(h);
    let write_lines = |label: &str| -> Vec<String> {
        by_label
            .get(label)
            .map(|ws| {
                ws.iter()
                    .map(|&i| {
                        let w = &h.writes[i];
                        format!(
                            "{:8.3}s write #{} {} = {} on {} via {:?}: {:?} at {:.3}s",
                            w.issued_s,
                            w.id,
                            w.name,
                            crate::history::value_of(w.id),
                            fin.names.get(w.node).map_or("?", String::as_str),
                            w.method,
                            w.outcome,
                            w.done_s
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let faults_lines = || -> Vec<String> {
        h.faults
            .iter()
            .map(|f| {
                format!(
                    "{:8.3}s fault #{} {} on {} until {}{}",
                    f.start_s,
                    f.index,
                    f.kind.name(),
                    f.target,
                    f.end_s.map_or("the end".to_owned(), |e| format!("{e:.3}s")),
                    if f.note.is_empty() { String::new() } else { format!(" ({})", f.note) }
                )
            })
            .collect()
    };

    // Agreement.
    let first = fin.digests.first().cloned();
    if fin.digests.iter().any(|d| !matches!(d, Ok(Some(_))) || Some(d) != first.as_ref()) {
        let lines = fin.digests.iter().enumerate().map(|(i, d)| format!("{}: {d:?}", fin.names[i])).collect();
        out.push(Violation { check: "digests", message: "nodes hold different zone digests".into(), history: lines });
    }
    let mut all = fin.names.clone();
    all.sort();
    for (i, m) in fin.members.iter().enumerate() {
        if m.as_ref().ok() != Some(&all) {
            out.push(Violation {
                check: "membership",
                message: format!("{} does not hold every node alive: {m:?}", fin.names[i]),
                history: faults_lines(),
            });
        }
    }

    // Acknowledged writes. Every namespace reads one kernel clock, so a
    // write issued after another was acknowledged carries a later stamp
    // and must win, unless a node ran with a wrong clock around then (its
    // stamps, and those of nodes that heard from it, may be ahead).
    let tainted = |t: f64| {
        h.faults.iter().any(|f| {
            f.kind == FaultKind::ClockOffset
                && f.start_s <= t
                && t <= f.end_s.unwrap_or(f64::INFINITY) + f.offset_s.unsigned_abs() as f64 + 5.0
        })
    };
    for (label, ws) in &by_label {
        let any_acked = ws.iter().any(|&i| h.writes[i].outcome == Outcome::Acked);
        let mut agreed: Option<&Answer> = None;
        for node in 0..fin.names.len() {
            let Some(a) = fin.answers.get(&(node, label.clone())) else { continue };
            let ok = match a {
                Answer::Values(v) if v.len() == 1 => {
                    let from = id_of(v[0]).and_then(|id| ws.iter().map(|&i| &h.writes[i]).find(|w| w.id == id));
                    from.is_some_and(|w| {
                        // No acknowledged write to the name began after
                        // this one ended (it would have replaced it).
                        ws.iter().map(|&i| &h.writes[i]).all(|b| {
                            b.outcome != Outcome::Acked
                                || b.issued_s <= w.done_s
                                || tainted(w.issued_s)
                                || tainted(b.issued_s)
                        })
                    })
                }
                // A name nobody acknowledged may be absent.
                Answer::NxDomain => !any_acked,
                _ => false,
            };
            let agrees = agreed.is_none_or(|x| x == a);
            agreed.get_or_insert(a);
            if !ok || !agrees {
                let mut hist = write_lines(label);
                hist.extend(query_lines(h, label, &fin.names));
                hist.extend(faults_lines());
                out.push(Violation {
                    check: "acknowledged writes",
                    message: format!(
                        "{} answers {a:?} for {label}: not the last acknowledged write to it or a later one{}",
                        fin.names[node],
                        if agrees { "" } else { " (and other nodes answer otherwise)" }
                    ),
                    history: hist,
                });
                break;
            }
        }
    }

    // Nothing never written, never two values at once.
    for q in &h.queries {
        let Answer::Values(v) = &q.answer else { continue };
        let ws = by_label.get(&q.name);
        let bad = v.len() > 1
            || v.iter().any(|ip| {
                let Some(id) = id_of(*ip) else { return true };
                !ws.is_some_and(|ws| ws.iter().any(|&i| h.writes[i].id == id && h.writes[i].issued_s <= q.t_s))
            });
        if bad {
            let mut hist = write_lines(&q.name);
            hist.extend(query_lines(h, &q.name, &fin.names));
            out.push(Violation {
                check: "never written",
                message: format!(
                    "{} answered {v:?} for {} at {:.3}s over {}: not a value written to that name by then",
                    fin.names.get(q.node).map_or("?", String::as_str),
                    q.name,
                    q.t_s,
                    if q.tcp { "TCP" } else { "UDP" }
                ),
                history: hist,
            });
        }
    }

    // Faults that could not be made or undone: the run did not test what
    // it says.
    for f in h.faults.iter().filter(|f| f.note.contains("failed")) {
        out.push(Violation {
            check: "faults",
            message: format!("fault #{} {} on {}: {}", f.index, f.kind.name(), f.target, f.note),
            history: Vec::new(),
        });
    }

    // Crashes: a node must survive every fault (a full disk included).
    for (t, what) in h.events.iter().filter(|e| e.1.contains("exited on its own")) {
        out.push(Violation { check: "crashes", message: format!("at {t:.3}s: {what}"), history: faults_lines() });
    }

    // Serials.
    let mut last: BTreeMap<usize, (f64, u32)> = BTreeMap::new();
    for &(t, node, serial) in &h.serials {
        if let Some(&(pt, ps)) = last.get(&node)
            && serial < ps
        {
            let mut hist: Vec<String> = h
                .serials
                .iter()
                .filter(|s| s.1 == node && s.0 >= pt - 10.0 && s.0 <= t + 1.0)
                .map(|s| format!("{:8.3}s serial {}", s.0, s.2))
                .collect();
            hist.extend(
                h.events.iter().filter(|e| e.1.contains(&fin.names[node])).map(|e| format!("{:8.3}s {}", e.0, e.1)),
            );
            out.push(Violation {
                check: "serials",
                message: format!(
                    "{}'s SOA serial went from {ps} (at {pt:.3}s) back to {serial} (at {t:.3}s)",
                    fin.names[node]
                ),
                history: hist,
            });
        }
        last.insert(node, (t, serial));
    }
    out
}

/// Write indices per label, in issue order.
pub fn writes_by_label(h: &History) -> BTreeMap<String, Vec<usize>> {
    let mut m: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, w) in h.writes.iter().enumerate() {
        m.entry(w.name.clone()).or_default().push(i);
    }
    m
}

fn query_lines(h: &History, label: &str, names: &[String]) -> Vec<String> {
    h.queries
        .iter()
        .filter(|q| q.name == label && !matches!(q.answer, Answer::Error(_)))
        .map(|q| {
            format!(
                "{:8.3}s {} answered {:?} over {}",
                q.t_s,
                names.get(q.node).map_or("?", String::as_str),
                q.answer,
                if q.tcp { "TCP" } else { "UDP" }
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{FaultRec, Method, QueryRec, WriteRec, value_of};

    fn write(id: u32, name: &str, issued_s: f64, outcome: Outcome) -> WriteRec {
        WriteRec { id, name: name.into(), node: 0, method: Method::Grpc, issued_s, done_s: issued_s + 0.01, outcome }
    }

    fn agreeing_final(answers: &[(&str, Answer)]) -> FinalState {
        let names = vec!["a".to_owned(), "b".to_owned()];
        let mut fin = FinalState {
            digests: vec![Ok(Some("d".into())), Ok(Some("d".into()))],
            members: vec![Ok(names.clone()), Ok(names.clone())],
            names,
            answers: BTreeMap::new(),
        };
        for node in 0..2 {
            for (l, a) in answers {
                fin.answers.insert((node, (*l).to_owned()), a.clone());
            }
        }
        fin
    }

    #[test]
    fn a_clean_run_passes() {
        let mut h = History::default();
        h.writes.push(write(1, "w1", 1.0, Outcome::Acked));
        h.writes.push(write(2, "k1", 2.0, Outcome::Acked));
        h.writes.push(write(3, "k1", 3.0, Outcome::Acked));
        h.serials = vec![(1.0, 0, 5), (2.0, 0, 6), (2.0, 1, 6)];
        h.queries.push(QueryRec {
            t_s: 2.5,
            node: 1,
            tcp: false,
            name: "w1".into(),
            answer: Answer::Values(vec![value_of(1)]),
        });
        // k1's later write wins.
        let fin =
            agreeing_final(&[("w1", Answer::Values(vec![value_of(1)])), ("k1", Answer::Values(vec![value_of(3)]))]);
        assert!(check(&h, &fin).is_empty(), "{:?}", check(&h, &fin));
    }

    #[test]
    fn an_overwritten_name_must_end_on_the_last_acknowledged_write_unless_a_clock_was_off() {
        let mut h = History::default();
        h.writes.push(write(2, "k1", 2.0, Outcome::Acked));
        h.writes.push(write(3, "k1", 3.0, Outcome::Acked));
        // Concurrent with write 3 (issued before 3 was done): may win.
        h.writes.push(write(4, "k1", 3.005, Outcome::Acked));
        let ends_on = |h: &History, id: u32| check(h, &agreeing_final(&[("k1", Answer::Values(vec![value_of(id)]))]));
        assert!(ends_on(&h, 4).is_empty());
        assert!(ends_on(&h, 3).is_empty(), "a concurrent write may lose");
        let v = ends_on(&h, 2);
        assert_eq!(v.len(), 1, "write 3 began after write 2 was acknowledged, so 2 cannot be last: {v:?}");
        assert_eq!(v[0].check, "acknowledged writes");
        // A node with a wrong clock around then excuses the order.
        h.faults.push(FaultRec {
            index: 0,
            kind: FaultKind::ClockOffset,
            target: "a".into(),
            start_s: 1.0,
            end_s: Some(2.5),
            offset_s: 30,
            note: String::new(),
        });
        assert!(ends_on(&h, 2).is_empty());
    }

    #[test]
    fn each_rule_catches_its_violation() {
        let mut h = History::default();
        h.writes.push(write(1, "w1", 1.0, Outcome::Acked));
        h.writes.push(write(2, "w2", 1.0, Outcome::Failed("timeout".into())));
        // Answered before it was written, and a value never written at all.
        h.queries.push(QueryRec {
            t_s: 0.5,
            node: 0,
            tcp: true,
            name: "w1".into(),
            answer: Answer::Values(vec![value_of(1)]),
        });
        h.queries.push(QueryRec {
            t_s: 2.0,
            node: 0,
            tcp: false,
            name: "w2".into(),
            answer: Answer::Values(vec![value_of(9)]),
        });
        h.serials = vec![(1.0, 1, 7), (2.0, 1, 6)];
        // The acknowledged write is lost on every node.
        let mut fin = agreeing_final(&[("w1", Answer::NxDomain)]);
        fin.digests[1] = Ok(Some("other".into()));
        fin.members[0] = Ok(vec!["a".into()]);
        let v = check(&h, &fin);
        let kinds: Vec<&str> = v.iter().map(|v| v.check).collect();
        for k in ["digests", "membership", "acknowledged writes", "never written", "serials"] {
            assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
        }
        assert_eq!(kinds.iter().filter(|k| **k == "never written").count(), 2);
        let lost = v.iter().find(|v| v.check == "acknowledged writes").expect("found");
        assert!(lost.history.iter().any(|l| l.contains("write #1")), "{:?}", lost.history);
    }
}
