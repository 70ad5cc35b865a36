//! QUIC endpoints between nodes, and length-prefixed frames on their
//! streams with bounded size and time.
//!
//! A connection is mutually authenticated by TLS 1.3 under the cluster CA.
//! The client checks the server is the node it meant to reach (its
//! certificate names that node); the server learns who the client is from
//! the first unidirectional stream, which carries the client's node id, and
//! checks the client's certificate names that node ([`Endpoint::identify`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};

use crate::ca::node_dns_name;
use crate::tls::{Identity, TlsError, cert_names_node};

/// Bounds on what is read from a peer.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest frame accepted.
    pub max_frame: usize,
    /// Longest wait for any read.
    pub read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_frame: 64 * 1024 * 1024, read_timeout: Duration::from_secs(10) }
    }
}

/// Bounds on a whole answer (every frame of one stream), checked frame by
/// frame as it arrives: an answer over them is refused before it is
/// buffered, not after.
#[derive(Clone, Copy, Debug)]
pub struct AnswerLimits {
    /// Most frames.
    pub max_frames: usize,
    /// Most payload bytes over all frames.
    pub max_bytes: usize,
}

/// Why a transport operation failed; each is counted by cause.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// TLS material was refused.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The UDP socket could not be bound.
    #[error("binding QUIC on {addr}: {source} (choose another --quic)")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Connecting failed (unreachable, or TLS refused either side).
    #[error("connection to {0}: {1}")]
    Connect(String, String),
    /// The peer sent a frame over the limit.
    #[error("peer sent a {0}-byte frame, over the {1}-byte limit")]
    TooLarge(usize, usize),
    /// A peer's answer went over its [`AnswerLimits`]; reading stopped there.
    #[error("peer's answer went over the limit of {limit} {what}; stopped reading it")]
    AnswerTooLarge {
        /// `frames` or `bytes`.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The peer stalled.
    #[error("peer sent nothing for {0:?}")]
    Timeout(Duration),
    /// The peer's certificate does not name the node it claims to be.
    #[error("peer claims to be {0:?} but its certificate does not name it")]
    WrongIdentity(String),
    /// The stream or connection broke.
    #[error("stream: {0}")]
    Stream(String),
}

/// Writes one frame: a 4-byte big-endian length, then the payload.
pub async fn write_frame(send: &mut quinn::SendStream, payload: &[u8]) -> Result<(), NetError> {
    let len = u32::try_from(payload.len()).map_err(|_| NetError::TooLarge(payload.len(), u32::MAX as usize))?;
    send.write_all(&len.to_be_bytes()).await.map_err(|e| NetError::Stream(e.to_string()))?;
    send.write_all(payload).await.map_err(|e| NetError::Stream(e.to_string()))
}

/// Reads one frame; `None` when the stream ended cleanly between frames.
pub async fn read_frame(recv: &mut quinn::RecvStream, limits: &Limits) -> Result<Option<Vec<u8>>, NetError> {
    let mut len = [0u8; 4];
    let first = tokio::time::timeout(limits.read_timeout, recv.read(&mut len[..1]))
        .await
        .map_err(|_| NetError::Timeout(limits.read_timeout))?
        .map_err(|e| NetError::Stream(e.to_string()))?;
    match first {
        None => return Ok(None),
        Some(0) => return Err(NetError::Stream("empty read".into())),
        Some(_) => {}
    }
    tokio::time::timeout(limits.read_timeout, recv.read_exact(&mut len[1..]))
        .await
        .map_err(|_| NetError::Timeout(limits.read_timeout))?
        .map_err(|e| NetError::Stream(e.to_string()))?;
    let len = u32::from_be_bytes(len) as usize;
    if len > limits.max_frame {
        return Err(NetError::TooLarge(len, limits.max_frame));
    }
    let mut buf = vec![0u8; len];
    tokio::time::timeout(limits.read_timeout, recv.read_exact(&mut buf))
        .await
        .map_err(|_| NetError::Timeout(limits.read_timeout))?
        .map_err(|e| NetError::Stream(e.to_string()))?;
    Ok(Some(buf))
}

/// One node's QUIC endpoint, server and client at once.
#[derive(Clone, Debug)]
pub struct Endpoint {
    endpoint: quinn::Endpoint,
    identity: Identity,
    client: quinn::ClientConfig,
    limits: Limits,
}

impl Endpoint {
    /// Binds `addr` with this node's identity.
    pub fn bind(addr: SocketAddr, identity: Identity, limits: Limits) -> Result<Endpoint, NetError> {
        let server = QuicServerConfig::try_from(identity.server_config()?)
            .map_err(|e| NetError::Connect(addr.to_string(), e.to_string()))?;
        let server = quinn::ServerConfig::with_crypto(Arc::new(server));
        let endpoint = quinn::Endpoint::server(server, addr).map_err(|source| NetError::Bind { addr, source })?;
        let client = QuicClientConfig::try_from(identity.client_config()?)
            .map_err(|e| NetError::Connect(addr.to_string(), e.to_string()))?;
        let client = quinn::ClientConfig::new(Arc::new(client));
        Ok(Endpoint { endpoint, identity, client, limits })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.endpoint.local_addr().map_err(|e| NetError::Stream(e.to_string()))
    }

    /// The read limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Connects to node `peer_id` at `addr` and tells it who this node is.
    /// Fails unless the peer's certificate names `peer_id`.
    pub async fn connect(&self, addr: SocketAddr, peer_id: &str) -> Result<quinn::Connection, NetError> {
        let name = node_dns_name(peer_id);
        let connecting = self
            .endpoint
            .connect_with(self.client.clone(), addr, &name)
            .map_err(|e| NetError::Connect(format!("{peer_id} at {addr}"), e.to_string()))?;
        let conn = tokio::time::timeout(self.limits.read_timeout, connecting)
            .await
            .map_err(|_| NetError::Timeout(self.limits.read_timeout))?
            .map_err(|e| NetError::Connect(format!("{peer_id} at {addr}"), e.to_string()))?;
        let mut hello = conn.open_uni().await.map_err(|e| NetError::Stream(e.to_string()))?;
        write_frame(&mut hello, self.identity.node_id.as_bytes()).await?;
        hello.finish().map_err(|e| NetError::Stream(e.to_string()))?;
        Ok(conn)
    }

    /// The next incoming connection, handshake done; `None` once closed.
    pub async fn accept(&self) -> Option<Result<quinn::Connection, NetError>> {
        let incoming = self.endpoint.accept().await?;
        Some(incoming.await.map_err(|e| NetError::Connect("incoming".into(), e.to_string())))
    }

    /// Who the client of `conn` is: the id it sends first, checked against
    /// its certificate.
    pub async fn identify(&self, conn: &quinn::Connection) -> Result<String, NetError> {
        let mut hello = tokio::time::timeout(self.limits.read_timeout, conn.accept_uni())
            .await
            .map_err(|_| NetError::Timeout(self.limits.read_timeout))?
            .map_err(|e| NetError::Stream(e.to_string()))?;
        let small = Limits { max_frame: 63, ..self.limits };
        let id = read_frame(&mut hello, &small).await?.ok_or_else(|| NetError::Stream("no hello".into()))?;
        let id = String::from_utf8(id).map_err(|_| NetError::WrongIdentity("(not UTF-8)".into()))?;
        let certs = conn
            .peer_identity()
            .and_then(|any| any.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>().ok())
            .ok_or_else(|| NetError::WrongIdentity(id.clone()))?;
        match certs.first() {
            Some(c) if cert_names_node(c, &id) => Ok(id),
            _ => Err(NetError::WrongIdentity(id)),
        }
    }

    /// Sends one request frame on a new stream and reads every answer frame
    /// until the peer finishes the stream. The answer is checked against
    /// `bounds` as it streams in: one frame past either bound stops the
    /// stream (the peer is told to stop sending) and fails the request.
    pub async fn request(
        &self,
        conn: &quinn::Connection,
        request: &[u8],
        bounds: AnswerLimits,
    ) -> Result<Vec<Vec<u8>>, NetError> {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| NetError::Stream(e.to_string()))?;
        write_frame(&mut send, request).await?;
        send.finish().map_err(|e| NetError::Stream(e.to_string()))?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while let Some(f) = read_frame(&mut recv, &self.limits).await? {
            bytes = bytes.saturating_add(f.len());
            let over = if out.len() >= bounds.max_frames {
                Some(("frames", bounds.max_frames))
            } else if bytes > bounds.max_bytes {
                Some(("bytes", bounds.max_bytes))
            } else {
                None
            };
            if let Some((what, limit)) = over {
                let _ = recv.stop(1u32.into());
                return Err(NetError::AnswerTooLarge { what, limit });
            }
            out.push(f);
        }
        Ok(out)
    }

    /// Closes every connection and stops accepting.
    pub fn close(&self) {
        self.endpoint.close(0u32.into(), b"bye");
    }
}
