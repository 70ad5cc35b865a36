//! The update writer: one thread that applies verified RFC 2136 UPDATEs,
//! one at a time, and sends their answers.
//!
//! DNS workers never wait for a write: a UDP worker hands the UPDATE over
//! with the socket and address to answer to and goes back to its queries;
//! a TCP connection awaits its answer on a channel, which parks the task,
//! not a thread. The journal's fsync runs here only.
//!
//! - One at a time: an UPDATE's prerequisites, the RRsets it reads and its
//!   write must not interleave with another's (RFC 2136 §3.7). A single
//!   thread gives that without a lock any worker could wait on.
//! - Bounded: at most [`QUEUE`] UPDATEs wait; past that a new one is
//!   answered SERVFAIL at once (RFC 2136 §3.8 lets a server that cannot
//!   apply an update say so), so a flood of signed UPDATEs cannot grow
//!   memory or stall the workers.
//! - Contained: a panic while applying one UPDATE is caught; that UPDATE
//!   is answered SERVFAIL, the thread goes on with the next.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use domain::base::iana::Rcode;

use super::update::{self, Verified};

/// Most UPDATEs waiting for the writer.
pub const QUEUE: usize = 1024;

/// Where an UPDATE's answer goes.
pub enum Reply {
    /// A datagram to `peer` from `socket` (a clone of the worker's).
    Udp {
        /// The socket the UPDATE came in on.
        socket: Arc<UdpSocket>,
        /// Who sent it.
        peer: SocketAddr,
    },
    /// To a waiting TCP connection.
    Channel(tokio::sync::oneshot::Sender<Vec<u8>>),
}

impl Reply {
    /// Sends `answer`; a client gone meanwhile is not an error.
    pub fn send(self, answer: Vec<u8>) {
        match self {
            Reply::Udp { socket, peer } => {
                if let Err(e) = socket.send_to(&answer, peer) {
                    tracing::debug!(error = %e, %peer, "could not send an UPDATE answer");
                }
            }
            Reply::Channel(tx) => {
                let _ = tx.send(answer);
            }
        }
    }
}

/// One UPDATE to apply.
pub struct Job {
    /// The UPDATE, signature and scope checked.
    pub update: Box<Verified>,
    /// Where its answer goes.
    pub reply: Reply,
}

/// Applies one verified UPDATE; returns its RCODE and signed answer.
pub type Handler = Box<dyn FnMut(Verified) -> (Rcode, Option<Vec<u8>>) + Send>;

/// The handle workers submit UPDATEs through.
pub struct UpdateWriter {
    tx: SyncSender<Job>,
}

impl UpdateWriter {
    /// Starts the writer thread around `handler`.
    pub fn start(handler: Handler) -> std::io::Result<UpdateWriter> {
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new().name("update-writer".into()).spawn(move || run(rx, handler))?;
        Ok(UpdateWriter { tx })
    }

    /// Queues `job` without waiting. When the queue is full (or the writer
    /// is gone) the UPDATE is answered SERVFAIL at once.
    pub fn submit(&self, job: Job) {
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                tracing::warn!(zone = %job.update.zone(), "the update writer is saturated; answered SERVFAIL");
                if let Some(answer) = update::unavailable(*job.update) {
                    job.reply.send(answer);
                }
            }
        }
    }
}

fn run(rx: Receiver<Job>, mut handler: Handler) {
    while let Ok(Job { update, reply }) = rx.recv() {
        let fallback = update.servfail();
        let (key, zone) = (update.key_name().to_owned(), update.zone());
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(*update))).unwrap_or_else(|_| {
                tracing::error!(%zone, %key, "applying an UPDATE panicked (a bug: please report it); answered SERVFAIL");
                (Rcode::SERVFAIL, fallback)
            });
        if let (_, Some(answer)) = outcome {
            reply.send(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed_update(key: &domain::tsig::Key) -> Vec<u8> {
        use domain::base::{MessageBuilder, Name, Question, iana::Opcode};
        let mut b = MessageBuilder::new_vec();
        b.header_mut().set_opcode(Opcode::UPDATE);
        let mut q = b.question();
        let zone: Name<Vec<u8>> = "example.net.".parse().unwrap();
        q.push(Question::new_in(zone, domain::base::iana::Rtype::SOA)).unwrap();
        let mut add = q.additional();
        domain::tsig::ClientTransaction::request(key, &mut add, domain::rdata::tsig::Time48::now()).unwrap();
        add.finish()
    }

    fn verified(keys: &update::KeyRing, key: &domain::tsig::Key) -> Box<Verified> {
        match update::verify(&signed_update(key), keys) {
            update::Checked::Write(v) => v,
            _ => panic!("a signed UPDATE in scope must go to the writer"),
        }
    }

    /// A panic while applying one UPDATE costs that UPDATE (answered
    /// SERVFAIL), not the writer: the next one is applied.
    #[test]
    fn a_panic_applying_an_update_is_contained() {
        let spec = "hmac-sha256:k:MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=".to_owned();
        let keys = update::parse_keys(std::slice::from_ref(&spec), &[]).unwrap();
        let key = update::parse_key(&spec).unwrap();
        let mut calls = 0;
        let writer = UpdateWriter::start(Box::new(move |_v| {
            calls += 1;
            if calls == 1 {
                panic!("injected");
            }
            (Rcode::NOERROR, Some(b"ok".to_vec()))
        }))
        .unwrap();
        let mut answers = Vec::new();
        for _ in 0..2 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            writer.submit(Job { update: verified(&keys, &key), reply: Reply::Channel(tx) });
            answers.push(rx.blocking_recv().expect("an answer, even after a panic"));
        }
        let first = domain::base::Message::from_octets(answers[0].clone()).unwrap();
        assert_eq!(first.header().rcode(), Rcode::SERVFAIL);
        assert_eq!(answers[1], b"ok");
    }

    /// Submitting never waits for the writer: with the writer stuck on one
    /// UPDATE and the queue full, a further submit returns at once with
    /// SERVFAIL.
    #[test]
    fn submitting_never_waits_for_a_blocked_writer() {
        let spec = "hmac-sha256:k:MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=".to_owned();
        let keys = update::parse_keys(std::slice::from_ref(&spec), &[]).unwrap();
        let key = update::parse_key(&spec).unwrap();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let writer = UpdateWriter::start(Box::new(move |_v| {
            let _ = release_rx.recv(); // a stuck fsync
            (Rcode::NOERROR, Some(b"ok".to_vec()))
        }))
        .unwrap();
        let mut waiting = Vec::new();
        // One being applied (stuck) plus a full queue.
        for _ in 0..=QUEUE {
            let (tx, rx) = tokio::sync::oneshot::channel();
            writer.submit(Job { update: verified(&keys, &key), reply: Reply::Channel(tx) });
            waiting.push(rx);
        }
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        writer.submit(Job { update: verified(&keys, &key), reply: Reply::Channel(tx) });
        let answer = rx.try_recv().expect("answered before submit returned");
        let msg = domain::base::Message::from_octets(answer).unwrap();
        assert_eq!(msg.header().rcode(), Rcode::SERVFAIL);
        drop(release_tx);
    }
}
