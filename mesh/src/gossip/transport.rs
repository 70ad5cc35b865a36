//! chitchat's UDP transport: authenticates every datagram with the cluster
//! keyring (see [`crate::auth`]) and counts what each pool sends and
//! receives.
//!
//! The key check runs on the raw datagram, before chitchat decodes a byte
//! of it: an outsider's datagram costs one HMAC and is dropped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use chitchat::ChitchatEnvelope;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport};
use ring::rand::SecureRandom;

use crate::auth::{self, Keyring, Kind, NONCE_LEN, Reject, ReplayGuard};

/// Largest UDP payload (IPv4, 65,535 minus the IP and UDP headers).
const MAX_DATAGRAM: usize = 65_507;

/// Gossip traffic of one pool, since the node started.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Datagrams sent.
    pub messages_out: AtomicU64,
    /// Bytes sent (UDP payload).
    pub bytes_out: AtomicU64,
    /// Datagrams received and decoded.
    pub messages_in: AtomicU64,
    /// Bytes received (UDP payload).
    pub bytes_in: AtomicU64,
}

impl Traffic {
    /// (messages in, bytes in, messages out, bytes out).
    pub fn read(&self) -> (u64, u64, u64, u64) {
        (
            self.messages_in.load(Ordering::Relaxed),
            self.bytes_in.load(Ordering::Relaxed),
            self.messages_out.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
        )
    }
}

/// This node's gossip authentication: the keyring (replaceable while
/// running, for rotation), one replay cache for every pool and the referral
/// port (a message captured on one port is refused on the others too), and
/// the count of refused messages by cause.
pub struct GossipAuth {
    keys: ArcSwap<Keyring>,
    guard: Mutex<ReplayGuard>,
    rejected: [AtomicU64; Reject::ALL.len()],
    rng: ring::rand::SystemRandom,
}

impl std::fmt::Debug for GossipAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GossipAuth({:?})", self.keys.load())
    }
}

#[allow(clippy::disallowed_methods)] // a driver: the one place that reads the wall clock
fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl GossipAuth {
    /// Authentication with `keys`, ±[`auth::DEFAULT_WINDOW_MS`] of clock skew.
    pub fn new(keys: Keyring) -> GossipAuth {
        GossipAuth {
            keys: ArcSwap::from_pointee(keys),
            guard: Mutex::new(ReplayGuard::default()),
            rejected: Default::default(),
            rng: ring::rand::SystemRandom::new(),
        }
    }

    /// Replaces the keyring (rotation); takes effect for the next message.
    pub fn set_keys(&self, keys: Keyring) {
        tracing::info!(keys = ?keys, "gossip keyring replaced");
        self.keys.store(Arc::new(keys));
    }

    /// Ids of the keys in use, primary first.
    pub fn key_ids(&self) -> Vec<u32> {
        self.keys.load().ids()
    }

    /// Seals `payload` as `kind` with the primary key, appending to `out`.
    pub fn seal(&self, kind: Kind, payload: &[u8], out: &mut Vec<u8>) -> anyhow::Result<()> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
        auth::seal(self.keys.load().primary(), kind, unix_ms(), nonce, payload, out);
        Ok(())
    }

    /// Opens an envelope of `kind`; a refusal is counted by cause.
    pub fn open<'a>(&self, kind: Kind, envelope: &'a [u8]) -> Result<&'a [u8], Reject> {
        let keys = self.keys.load();
        let opened = self.guard.lock().unwrap_or_else(|e| e.into_inner()).open(&keys, kind, unix_ms(), envelope);
        if let Err(why) = opened {
            self.rejected[why as usize].fetch_add(1, Ordering::Relaxed);
        }
        opened
    }

    /// Messages refused since start, by cause (every cause listed).
    pub fn rejected(&self) -> BTreeMap<&'static str, u64> {
        Reject::ALL.iter().map(|r| (r.as_str(), self.rejected[*r as usize].load(Ordering::Relaxed))).collect()
    }
}

/// A [`Transport`] on real UDP sockets that seals and opens every datagram
/// when the node has a keyring, and counts traffic into one [`Traffic`].
pub(crate) struct GossipTransport {
    pub(crate) traffic: Arc<Traffic>,
    pub(crate) auth: Option<Arc<GossipAuth>>,
}

#[async_trait]
impl Transport for GossipTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let socket = tokio::net::UdpSocket::bind(listen_addr)
            .await
            .with_context(|| format!("failed to bind to {listen_addr}/UDP for gossip"))?;
        Ok(Box::new(GossipSocket {
            socket,
            traffic: self.traffic.clone(),
            auth: self.auth.clone(),
            plain: Vec::with_capacity(MAX_DATAGRAM),
            sealed: Vec::with_capacity(MAX_DATAGRAM),
            recv: vec![0u8; MAX_DATAGRAM].into_boxed_slice(),
        }))
    }
}

struct GossipSocket {
    socket: tokio::net::UdpSocket,
    traffic: Arc<Traffic>,
    auth: Option<Arc<GossipAuth>>,
    plain: Vec<u8>,
    sealed: Vec<u8>,
    recv: Box<[u8]>,
}

/// Errors that do not mean the socket is broken (chitchat stops gossiping
/// in a pool whose socket returns an error).
fn transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), OutOfMemory | ConnectionReset | ConnectionRefused | WouldBlock | Interrupted)
}

#[async_trait]
impl Socket for GossipSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.socket.local_addr().context("failed to get the gossip socket's address")
    }

    async fn send(&mut self, to: SocketAddr, envelope: ChitchatEnvelope) -> anyhow::Result<SendOutcome> {
        self.plain.clear();
        envelope.serialize(&mut self.plain);
        let bytes = match &self.auth {
            Some(a) => {
                self.sealed.clear();
                a.seal(Kind::Gossip, &self.plain, &mut self.sealed)?;
                &self.sealed
            }
            None => &self.plain,
        };
        if bytes.len() > MAX_DATAGRAM {
            // chitchat keeps its datagrams under the limit minus our
            // envelope (vendor/chitchat PATCHES.md); never kill the pool.
            tracing::warn!(len = bytes.len(), %to, "gossip datagram too large to send; dropped");
            return Ok(SendOutcome { num_bytes_sent: 0 });
        }
        let sent = match self.socket.send_to(bytes, to).await {
            Ok(n) => n,
            Err(e) if transient(&e) => 0,
            Err(e) => return Err(e).context("failed to send a gossip datagram"),
        };
        self.traffic.messages_out.fetch_add(1, Ordering::Relaxed);
        self.traffic.bytes_out.fetch_add(sent as u64, Ordering::Relaxed);
        Ok(SendOutcome { num_bytes_sent: sent })
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            let (n, from_addr) = match self.socket.recv_from(&mut self.recv).await {
                Ok(r) => r,
                Err(e) if transient(&e) => continue,
                Err(e) => return Err(e).context("fatal gossip recv error"),
            };
            let datagram = &self.recv[..n];
            let mut payload = match &self.auth {
                Some(a) => match a.open(Kind::Gossip, datagram) {
                    Ok(p) => p,
                    Err(why) => {
                        // Debug only: an outsider must not be able to flood the log.
                        tracing::debug!(from = %from_addr, cause = why.as_str(), "refused a gossip datagram");
                        continue;
                    }
                },
                None => datagram,
            };
            match ChitchatEnvelope::deserialize(&mut payload) {
                Ok(envelope) => {
                    self.traffic.messages_in.fetch_add(1, Ordering::Relaxed);
                    self.traffic.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                    return Ok(RecvOutcome { from_addr, envelope, num_bytes_received: n });
                }
                Err(e) => {
                    tracing::debug!(from = %from_addr, len = n, error = %e, "undecodable gossip datagram");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::GossipKey;

    fn auth(b: u8) -> Arc<GossipAuth> {
        Arc::new(GossipAuth::new(Keyring::new(vec![GossipKey::new([b; 32])]).unwrap()))
    }

    #[test]
    fn refusals_are_counted_by_cause() {
        let (a, b) = (auth(1), auth(2));
        let mut m = Vec::new();
        a.seal(Kind::Gossip, b"x", &mut m).unwrap();
        assert!(b.open(Kind::Gossip, &m).is_err());
        assert!(b.open(Kind::Gossip, b"junk").is_err());
        assert!(a.open(Kind::Gossip, &m).is_ok());
        assert!(a.open(Kind::Gossip, &m).is_err());
        let rb = b.rejected();
        assert_eq!((rb["unknown_key"], rb["malformed"], rb["replay"]), (1, 1, 0));
        assert_eq!(a.rejected()["replay"], 1);
        assert!(!format!("{a:?}").contains("0101"));
    }
}
