//! DNS over TCP, RFC 7766: two-byte length prefix, several queries per
//! connection (pipelining, §6.2.1), an idle timeout (§6.2.3) and a limit
//! on open connections. Queries on one connection are answered in order;
//! RFC 7766 allows any order, and in-order costs nothing here because an
//! authoritative answer never waits on anything.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::{SharedRef, transfer};
use crate::acl::AclKind;
use crate::dns::auth::{Transport, parse, refuse};
use crate::dns::iana::Rtype;
use crate::metrics::Proto;

/// Binds a TCP listener with `SO_REUSEADDR` (fast restarts).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s =
        socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_tcp_nodelay(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Accepts connections until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    shared: SharedRef,
    mut shutdown: watch::Receiver<bool>,
    limit: Arc<Semaphore>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            // At the limit: close at once so the client can go elsewhere
            // rather than wait in the backlog (RFC 7766 §6.2.2).
            tracing::debug!(%peer, "tcp connection limit reached, closing");
            drop(stream);
            continue;
        };
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        tokio::spawn(async move {
            let span = tracing::debug_span!("tcp", %peer);
            let _ = tracing::Instrument::instrument(connection(stream, peer, shared, shutdown), span).await;
            drop(permit);
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: SharedRef,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let idle = shared.config.tcp_idle_timeout;
    let shard = shared.metrics.shard(shared.config.udp_workers * shared.config.listen.len());
    let mut inbuf = vec![0u8; 65535];
    let mut outbuf = vec![0u8; 2 + 65535];
    loop {
        if *shutdown.borrow() {
            break;
        }
        let len = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            r = tokio::time::timeout(idle, stream.read_u16()) => match r {
                Ok(Ok(len)) => len as usize,
                // EOF, reset or idle: close quietly.
                _ => break,
            },
        };
        // The rest of the message must follow promptly.
        match tokio::time::timeout(idle, stream.read_exact(&mut inbuf[..len])).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        let started = Instant::now();
        let msg = &inbuf[..len];
        let parsed = parse(msg);
        let is_transfer = parsed.as_ref().is_ok_and(|q| q.qtype == Rtype::AXFR || q.qtype == Rtype::IXFR);
        // Transfers are judged by the transfer list, in `transfer::serve`.
        let admitted =
            if is_transfer { Ok(AclKind::Transfer) } else { super::admit(&shared, shard, msg, peer.ip(), started) };
        match admitted {
            Ok(_) => {}
            Err(None) => continue,
            Err(Some(_)) => {
                let Some(a) = refuse(msg, &mut outbuf[2..], Transport::Tcp, &shared.answer) else { continue };
                shard.record(Proto::Tcp, &a, started.elapsed().as_nanos() as u64);
                outbuf[..2].copy_from_slice(&(a.len as u16).to_be_bytes());
                match tokio::time::timeout(idle, stream.write_all(&outbuf[..2 + a.len])).await {
                    Ok(r) => r?,
                    Err(_) => break,
                }
                continue;
            }
        }
        if crate::replicated::update::is_update(msg) {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let submitted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                shared.submit_update(msg, crate::replicated::writer::Reply::Channel(tx))
            }));
            if submitted.is_err() {
                tracing::error!("checking an UPDATE panicked (a bug: please report it); closing the connection");
                break;
            }
            // Parks this connection's task, not a thread; no answer (not
            // an UPDATE after all) leaves the connection as it was.
            if let Ok(reply) = rx.await {
                let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&reply);
                match tokio::time::timeout(idle, stream.write_all(&framed)).await {
                    Ok(r) => r?,
                    Err(_) => break,
                }
            }
            continue;
        }
        if let Ok(q) = &parsed
            && is_transfer
        {
            let a = transfer::serve(&mut stream, q, peer.ip(), &shared, &mut outbuf).await?;
            shard.record(Proto::Tcp, &a, started.elapsed().as_nanos() as u64);
            continue;
        }
        let zones = shared.store.current_full();
        // The channel is made only if the answer must come later.
        let mut later = None;
        let reply = || {
            let (tx, rx) = tokio::sync::oneshot::channel();
            later = Some(rx);
            Some(crate::replicated::writer::Reply::Channel(tx))
        };
        let incoming = crate::resolve::Incoming { msg, client: peer.ip(), transport: Transport::Tcp };
        let routed = crate::resolve::route(&shared, &zones, incoming, &mut outbuf[2..], None, reply);
        let a = match routed {
            crate::resolve::Routed::Now(Some(a)) => a,
            crate::resolve::Routed::Now(None) => {
                shard.record_dropped();
                continue;
            }
            crate::resolve::Routed::Later => {
                // Parks this connection's task until the resolver answers.
                let Some(rx) = later else { continue };
                if let Ok(reply) = rx.await {
                    let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&reply);
                    match tokio::time::timeout(idle, stream.write_all(&framed)).await {
                        Ok(r) => r?,
                        Err(_) => break,
                    }
                }
                continue;
            }
        };
        shard.record(Proto::Tcp, &a, started.elapsed().as_nanos() as u64);
        outbuf[..2].copy_from_slice(&(a.len as u16).to_be_bytes());
        // A client that stops reading must not hold its connection slot forever.
        match tokio::time::timeout(idle, stream.write_all(&outbuf[..2 + a.len])).await {
            Ok(r) => r?,
            Err(_) => break,
        }
    }
    let _ = stream.shutdown().await;
    Ok(())
}
