//! Runs a sans-IO resolution to its end: performs the exchanges it asks
//! for, concurrently, and feeds their replies back.

use std::time::Duration;

use meshdns_resolver::forward::Forwarding;
use meshdns_resolver::{Ede, Millis, Reply, Resolved, Step};
use tokio::task::JoinSet;

use super::exchange::{ExchangeStats, exchange};
use super::tcp_pool::TcpPool;

/// A resolution the driver can run (forwarding or iteration).
pub trait Machine: Send {
    /// What to do next.
    fn poll(&mut self, now: Millis) -> Step;
    /// What came of the exchange named `token`.
    fn on_reply(&mut self, token: u64, reply: Reply, now: Millis);
}

impl Machine for Forwarding {
    fn poll(&mut self, now: Millis) -> Step {
        Forwarding::poll(self, now)
    }
    fn on_reply(&mut self, token: u64, reply: Reply, now: Millis) {
        Forwarding::on_reply(self, token, reply, now)
    }
}

impl Machine for meshdns_resolver::recursive::Resolution {
    fn poll(&mut self, now: Millis) -> Step {
        meshdns_resolver::recursive::Resolution::poll(self, now)
    }
    fn on_reply(&mut self, token: u64, reply: Reply, now: Millis) {
        meshdns_resolver::recursive::Resolution::on_reply(self, token, reply, now)
    }
}

/// The wall clock as the resolver crate counts it.
#[allow(clippy::disallowed_methods)] // the driver is where the clock is read
pub fn now_ms() -> Millis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Runs `m` until it is done, or `deadline` passes (then SERVFAIL).
pub async fn drive<M: Machine>(
    mut m: M,
    stats: std::sync::Arc<ExchangeStats>,
    pool: std::sync::Arc<TcpPool>,
    deadline: Duration,
) -> Resolved {
    let run = async {
        let mut pending: JoinSet<(u64, Reply)> = JoinSet::new();
        loop {
            match m.poll(now_ms()) {
                Step::Done(r) => return r,
                Step::Send(queries) => {
                    for o in queries {
                        let (stats, pool) = (stats.clone(), pool.clone());
                        pending.spawn(async move { (o.token, exchange(&o, &stats, &pool).await) });
                    }
                }
                Step::Wait => match pending.join_next().await {
                    Some(Ok((token, reply))) => m.on_reply(token, reply, now_ms()),
                    Some(Err(e)) => tracing::error!(error = %e, "an upstream exchange panicked (a bug)"),
                    None => {
                        tracing::error!("a resolution waits with nothing in flight (a bug); answering SERVFAIL");
                        return Resolved::servfail(None);
                    }
                },
            }
        }
    };
    match tokio::time::timeout(deadline, run).await {
        Ok(r) => r,
        Err(_) => Resolved::servfail(Some(Ede::new(
            Ede::NO_REACHABLE_AUTHORITY,
            format!("no answer within {} ms", deadline.as_millis()),
        ))),
    }
}
