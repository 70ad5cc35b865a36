//! The boundary between a sans-IO resolution and its driver.

use std::net::SocketAddr;

use crate::types::{Question, Resolved};

/// Which transport an outgoing query takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP, with the EDNS payload size in the query.
    Udp,
    /// TCP (RFC 7766), after TC=1 or for an upstream configured `tcp://`.
    Tcp,
}

/// A query the state machine wants sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Names this exchange when its [`Reply`] comes back.
    pub token: u64,
    /// Where to.
    pub server: SocketAddr,
    /// How.
    pub transport: Transport,
    /// The query in wire form with ID 0: the driver writes a random ID
    /// into the first two bytes before sending, and accepts only a reply
    /// with that ID, from `server`, asking `question`.
    pub wire: Vec<u8>,
    /// The question in `wire`, for the driver's check of the reply.
    pub question: Question,
    /// How long to wait before reporting [`Reply::Timeout`].
    pub timeout_ms: u64,
}

/// What came of an [`Outgoing`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A reply that passed the driver's checks (source, ID, question),
    /// still in wire form: parsing it is the state machine's job, so a
    /// malformed reply is handled the same way on every driver.
    Message {
        /// The reply's bytes.
        wire: Vec<u8>,
        /// Round-trip time in milliseconds.
        rtt_ms: u64,
    },
    /// Nothing (acceptable) arrived within the timeout.
    Timeout,
    /// The exchange failed at once (connection refused, ICMP unreachable,
    /// TCP reset).
    Failed,
}

/// What the state machine wants next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send these queries, then come back with their replies.
    Send(Vec<Outgoing>),
    /// Waiting for replies already asked for.
    Wait,
    /// Finished.
    Done(Resolved),
}
