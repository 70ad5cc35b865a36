//! Reused, pipelined TCP connections to servers (RFC 7766 §6.2.1).
//!
//! One connection per server address, shared by every resolution: each
//! query gets its own random ID, is written as soon as it comes, and its
//! reply is matched by ID (and question) whenever it arrives, in any
//! order. A connection that breaks fails what is waiting on it (each
//! waiter then sees a failed exchange and its resolution moves on) and the
//! next query opens a new one. A connection idle for [`IDLE`] is closed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// Idle connections close after this long.
pub const IDLE: Duration = Duration::from_secs(10);
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
    let (mut reader, mut writer) = stream.into_split();
    let mut pending: HashMap<u16, (Vec<u8>, oneshot::Sender<Vec<u8>>)> = HashMap::new();
    loop {
        tokio::select! {
            req = rx.recv(), if pending.len() < MAX_PENDING => {
                let Some(req) = req else { break };
                let Some(id) = req.wire.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else { continue };
                if pending.contains_key(&id) {
                    // Two queries in flight with one ID cannot be told
                    // apart: fail the newcomer (its exchange is retried
                    // with a new ID by the resolution's next step).
                    continue;
                }
                let mut framed = Vec::with_capacity(req.wire.len() + 2);
                framed.extend_from_slice(&(req.wire.len() as u16).to_be_bytes());
                framed.extend_from_slice(&req.wire);
                if writer.write_all(&framed).await.is_err() {
                    break;
                }
                pending.insert(id, (req.wire, req.reply));
            }
            len = reader.read_u16() => {
                let Ok(len) = len else { break };
                let mut buf = vec![0u8; len as usize];
                if reader.read_exact(&mut buf).await.is_err() {
                    break;
                }
                let Some(id) = buf.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else { continue };
                if let Some((query, reply)) = pending.remove(&id) {
                    if super::exchange::matches(&query, &buf, id) {
                        let _ = reply.send(buf);
                    } else {
                        // Right ID, wrong question: not ours; keep waiting.
                        pending.insert(id, (query, reply));
                    }
                }
            }
            _ = tokio::time::sleep(IDLE), if pending.is_empty() => break,
        }
    }
    alive.store(false, Ordering::Release);
}
