//! Reused, pipelined TCP connections to servers (RFC 7766 §6.2.1).
//!
//! One connection per server address, shared by every resolution: each
//! query gets its own random ID, is written as soon as it comes, and its
//! reply is matched by ID (and question) whenever it arrives, in any
//! order. A connection that breaks fails what is waiting on it (each
//! waiter then sees a failed exchange and its resolution moves on) and the
//! next query opens a new one. A connection idle for [`IDLE`] is closed,
//! and so is one whose oldest query has waited [`STALL`] (a server that
//! accepts queries and stops answering them must not hold the address).
//!
//! Frames are read by their own task, so a length prefix is never split
//! by the select loop (`read_u16` is not cancellation-safe), and writes
//! are bounded in time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Idle connections close after this long.
pub const IDLE: Duration = Duration::from_secs(10);
/// A connection whose oldest unanswered query is this old is closed.
pub const STALL: Duration = Duration::from_secs(10);
/// Longest a write may block (a server that stops reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Queries waiting on one connection, at most.
const MAX_PENDING: usize = 256;

struct Request {
    wire: Vec<u8>,
    reply: oneshot::Sender<Vec<u8>>,
}

struct Conn {
    tx: mpsc::Sender<Request>,
    alive: Arc<AtomicBool>,
}

/// The pool (see the module docs).
#[derive(Default)]
pub struct TcpPool {
    conns: Mutex<HashMap<SocketAddr, Conn>>,
    /// Connections opened since start.
    pub opened: std::sync::atomic::AtomicU64,
}

impl TcpPool {
    /// Sends `wire` (ID already set) to `server` and waits for the reply
    /// with that ID and question; `None` if the connection fails. The
    /// caller bounds the wait.
    pub async fn exchange(&self, server: SocketAddr, wire: Vec<u8>) -> Option<Vec<u8>> {
        for _ in 0..2 {
            let tx = self.sender(server);
            let (reply, rx) = oneshot::channel();
            if tx.send(Request { wire: wire.clone(), reply }).await.is_err() {
                // The connection ended between lookup and send: a new one.
                self.forget(server);
                continue;
            }
            return rx.await.ok();
        }
        None
    }

    fn forget(&self, server: SocketAddr) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if conns.get(&server).is_some_and(|c| !c.alive.load(Ordering::Acquire)) {
            conns.remove(&server);
        }
    }

    fn sender(&self, server: SocketAddr) -> mpsc::Sender<Request> {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = conns.get(&server)
            && c.alive.load(Ordering::Acquire)
        {
            return c.tx.clone();
        }
        let (tx, rx) = mpsc::channel(MAX_PENDING);
        let alive = Arc::new(AtomicBool::new(true));
        conns.insert(server, Conn { tx: tx.clone(), alive: alive.clone() });
        self.opened.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(run(server, rx, alive));
        tx
    }
}

/// A query written and not yet answered: the query, its waiter, and when
/// it was written.
type Pending = (Vec<u8>, oneshot::Sender<Vec<u8>>, Instant);

/// Reads whole frames and hands them over; ends at EOF or an error.
async fn read_frames(mut reader: tokio::net::tcp::OwnedReadHalf, frames: mpsc::Sender<Vec<u8>>) {
    loop {
        let Ok(len) = reader.read_u16().await else { return };
        let mut buf = vec![0u8; usize::from(len)];
        if reader.read_exact(&mut buf).await.is_err() || frames.send(buf).await.is_err() {
            return;
        }
    }
}

/// One connection: writes requests as they come, routes replies by ID.
async fn run(server: SocketAddr, mut rx: mpsc::Receiver<Request>, alive: Arc<AtomicBool>) {
    let stream = match tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(server)).await {
        Ok(Ok(s)) => s,
        _ => {
            alive.store(false, Ordering::Release);
            return; // dropping rx fails every waiter
        }
    };
    let _ = stream.set_nodelay(true);
    let (reader, mut writer) = stream.into_split();
    let (frame_tx, mut frames) = mpsc::channel::<Vec<u8>>(MAX_PENDING);
    let reading = tokio::spawn(read_frames(reader, frame_tx));
    let mut pending: HashMap<u16, Pending> = HashMap::new();
    loop {
        // Waiters that gave up (their exchange timed out) are dropped, so
        // they neither fill the table nor keep the connection open.
        pending.retain(|_, (_, reply, _)| !reply.is_closed());
        let oldest = pending.values().map(|(_, _, at)| *at).min();
        let deadline = oldest.map_or_else(|| Instant::now() + IDLE, |at| at + STALL);
        tokio::select! {
            req = rx.recv(), if pending.len() < MAX_PENDING => {
                let Some(req) = req else { break };
                if req.reply.is_closed() {
                    continue; // its caller already gave up
                }
                let Some(id) = req.wire.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else { continue };
                if pending.contains_key(&id) {
                    // Two queries in flight with one ID cannot be told
                    // apart: fail the newcomer (its exchange fails, and the
                    // resolution moves on).
                    continue;
                }
                let mut framed = Vec::with_capacity(req.wire.len() + 2);
                framed.extend_from_slice(&(req.wire.len() as u16).to_be_bytes());
                framed.extend_from_slice(&req.wire);
                match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&framed)).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
                pending.insert(id, (req.wire, req.reply, Instant::now()));
            }
            frame = frames.recv() => {
                let Some(buf) = frame else { break };
                let Some(id) = buf.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else { continue };
                if let Some((query, reply, at)) = pending.remove(&id) {
                    if super::exchange::matches(&query, &buf, id) {
                        let _ = reply.send(buf);
                    } else {
                        // Right ID, wrong question: not ours; keep waiting.
                        pending.insert(id, (query, reply, at));
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                // Idle, or the oldest query has waited too long: close.
                break;
            }
        }
    }
    alive.store(false, Ordering::Release);
    reading.abort();
}
