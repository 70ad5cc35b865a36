//! chitchat's UDP transport, counting what each pool sends and receives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chitchat::ChitchatEnvelope;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpTransport};

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

/// A [`Transport`] that opens chitchat's own UDP sockets and counts their
/// traffic into one [`Traffic`].
pub(crate) struct CountingTransport(pub(crate) Arc<Traffic>);

#[async_trait]
impl Transport for CountingTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let inner = UdpTransport.open(listen_addr).await?;
        Ok(Box::new(CountingSocket { inner, traffic: self.0.clone() }))
    }
}

struct CountingSocket {
    inner: Box<dyn Socket>,
    traffic: Arc<Traffic>,
}

#[async_trait]
impl Socket for CountingSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.inner.local_addr()
    }

    async fn send(&mut self, to: SocketAddr, envelope: ChitchatEnvelope) -> anyhow::Result<SendOutcome> {
        let out = self.inner.send(to, envelope).await?;
        self.traffic.messages_out.fetch_add(1, Ordering::Relaxed);
        self.traffic.bytes_out.fetch_add(out.num_bytes_sent as u64, Ordering::Relaxed);
        Ok(out)
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        let got = self.inner.recv().await?;
        self.traffic.messages_in.fetch_add(1, Ordering::Relaxed);
        self.traffic.bytes_in.fetch_add(got.num_bytes_received as u64, Ordering::Relaxed);
        Ok(got)
    }
}
