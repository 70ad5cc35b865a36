//! UDP: several sockets per address with `SO_REUSEPORT`, one blocking
//! thread each, so the kernel spreads queries over cores with no handoff.
//!
//! Each thread owns its receive and response buffers and its metrics shard,
//! and answers from the zone set it loads with one atomic read per query:
//! the path allocates nothing.
//!
//! Workers block in `recv` with no timeout: a receive timeout arms and
//! cancels a kernel timer on every wait, which costs measurable CPU per
//! query at moderate rates. To stop, [`stop`] sets the flag and shuts the
//! sockets down for reading, which wakes every blocked receive; a worker
//! answers what it already received, sees the flag and exits.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};

use super::SharedRef;
use crate::acl::AclKind;
use crate::dns::auth::{Transport, refuse};
use crate::metrics::Proto;
use crate::replicated::writer::Reply;
use crate::resolve::{Incoming, Routed, route};
use crate::rrl::SlipCounter;

/// Binds `n` sockets to `addr` with `SO_REUSEPORT`. With port 0 the first
/// socket picks the port and the others join it.
pub fn bind(addr: SocketAddr, n: usize) -> std::io::Result<Vec<UdpSocket>> {
    let mut out = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n.max(1) {
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        s.set_reuse_port(true)?;
        // Bigger buffers ride out bursts; the kernel caps them at rmem_max.
        let _ = s.set_recv_buffer_size(4 << 20);
        let _ = s.set_send_buffer_size(4 << 20);
        s.bind(&addr.into())?;
        let sock: UdpSocket = s.into();
        addr = sock.local_addr()?;
        out.push(sock);
    }
    Ok(out)
}

/// Stops the workers serving `sockets` (clones of theirs): sets `flag`,
/// then wakes every blocked receive by shutting the sockets down for reading.
pub fn stop(sockets: &[UdpSocket], flag: &AtomicBool) {
    flag.store(true, Ordering::SeqCst);
    for s in sockets {
        // On Linux this wakes receivers even on an unconnected socket; the
        // call itself reports ENOTCONN, which is expected.
        let _ = socket2::SockRef::from(s).shutdown(std::net::Shutdown::Read);
    }
}

/// Starts one worker thread per socket.
pub fn spawn(
    sockets: Vec<UdpSocket>,
    shared: SharedRef,
    stop: Arc<AtomicBool>,
    first_shard: usize,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    sockets
        .into_iter()
        .enumerate()
        .map(|(i, sock)| {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("udp-{i}"))
                .spawn(move || worker(sock, &shared, &stop, first_shard + i))
        })
        .collect()
}

fn worker(sock: UdpSocket, shared: &SharedRef, stop: &AtomicBool, shard: usize) {
    if shared.config.udp_batch {
        return worker_batched(sock, shared, stop, shard);
    }
    let shard = shared.metrics.shard(shard);
    let mut inbuf = vec![0u8; 65535];
    let mut outbuf = vec![0u8; 65535];
    let local = sock.local_addr().ok();
    let answer_from = update_socket(&sock);
    let _span = tracing::debug_span!("udp", ?local).entered();
    let mut slips = SlipCounter::default();
    let mut l1 = worker_cache(shared);
    while !stop.load(Ordering::Relaxed) {
        let Some((n, peer)) = received(sock.recv_from(&mut inbuf)) else { continue };
        let started = Instant::now();
        let msg = &inbuf[..n];
        let answered = match super::admit(shared, shard, msg, peer.ip(), started) {
            Err(None) => continue,
            Err(Some(_)) => refuse(msg, &mut outbuf, Transport::Udp, &shared.answer),
            Ok(AclKind::Update) => {
                submit_update(shared, msg, answer_from.as_ref(), peer);
                continue;
            }
            Ok(_) => {
                if let Some(early) = super::limit_early(shared, shard, &mut slips, peer.ip(), msg, &mut outbuf, started)
                {
                    if let Some(len) = early {
                        let _ = sock.send_to(&outbuf[..len], peer);
                    }
                    continue;
                }
                let zones = shared.store.current();
                let reply = || answer_from.as_ref().map(|s| Reply::Udp { socket: s.clone(), peer });
                let l1 = l1.as_mut();
                match guarded(|| {
                    Some(route(
                        shared,
                        &zones,
                        Incoming { msg, client: peer.ip(), transport: Transport::Udp },
                        &mut outbuf,
                        l1,
                        reply,
                    ))
                }) {
                    Some(Routed::Now(a)) => a,
                    // The resolver answers from its own clone of the socket.
                    Some(Routed::Later) => continue,
                    None => None,
                }
            }
        };
        match answered {
            Some(a) => {
                shard.record(Proto::Udp, &a, started.elapsed().as_nanos() as u64);
                let Some(len) =
                    super::limit_response(shared, shard, &mut slips, peer.ip(), &mut outbuf, a.len, started)
                else {
                    continue;
                };
                if let Err(e) = sock.send_to(&outbuf[..len], peer) {
                    tracing::debug!(error = %e, %peer, "udp send failed");
                }
            }
            None => shard.record_dropped(),
        }
    }
}

/// The same loop over `recvmmsg`/`sendmmsg` (see [`super::udp_batch`]).
fn worker_batched(sock: UdpSocket, shared: &SharedRef, stop: &AtomicBool, shard: usize) {
    use std::os::fd::AsRawFd;

    use super::udp_batch::{RecvBatch, SendBatch};

    let shard = shared.metrics.shard(shard);
    let fd = sock.as_raw_fd();
    let mut batch = RecvBatch::new();
    let mut replies = SendBatch::new(shared.answer.udp_payload.max(512) as usize);
    let local = sock.local_addr().ok();
    let answer_from = update_socket(&sock);
    let _span = tracing::debug_span!("udp", ?local, batched = true).entered();
    let mut slips = SlipCounter::default();
    let mut l1 = worker_cache(shared);
    while !stop.load(Ordering::Relaxed) {
        let Some(n) = received(batch.recv(fd)) else { continue };
        let zones = shared.store.current();
        for i in 0..n {
            let (Some(query), Some(ip)) = (batch.datagram(i), batch.source_ip(i)) else {
                shard.record_dropped();
                continue;
            };
            let started = Instant::now();
            let answered = match super::admit(shared, shard, query, ip, started) {
                Err(None) => continue,
                Err(Some(_)) => refuse(query, replies.next_buf(), Transport::Udp, &shared.answer),
                // The writer answers an UPDATE from its own socket handle.
                Ok(AclKind::Update) => {
                    if let Some(peer) = batch.peer(i) {
                        submit_update(shared, query, answer_from.as_ref(), peer);
                    }
                    continue;
                }
                Ok(_) => match super::limit_early(shared, shard, &mut slips, ip, query, replies.next_buf(), started) {
                    Some(Some(len)) => {
                        replies.push(&batch, i, len);
                        continue;
                    }
                    Some(None) => continue,
                    None => {
                        let reply = || {
                            batch
                                .peer(i)
                                .zip(answer_from.as_ref())
                                .map(|(peer, s)| Reply::Udp { socket: s.clone(), peer })
                        };
                        let (l1, buf) = (l1.as_mut(), replies.next_buf());
                        match guarded(|| {
                            Some(route(
                                shared,
                                &zones,
                                Incoming { msg: query, client: ip, transport: Transport::Udp },
                                buf,
                                l1,
                                reply,
                            ))
                        }) {
                            Some(Routed::Now(a)) => a,
                            Some(Routed::Later) => continue,
                            None => None,
                        }
                    }
                },
            };
            match answered {
                Some(a) => {
                    shard.record(Proto::Udp, &a, started.elapsed().as_nanos() as u64);
                    if let Some(len) =
                        super::limit_response(shared, shard, &mut slips, ip, replies.next_buf(), a.len, started)
                    {
                        replies.push(&batch, i, len);
                    }
                }
                None => shard.record_dropped(),
            }
        }
        replies.send(fd);
    }
}

/// The worker's own answer cache (L1), when the resolver is on.
fn worker_cache(shared: &SharedRef) -> Option<meshdns_resolver::cache::WorkerCache> {
    let r = shared.resolver.as_ref()?;
    Some(meshdns_resolver::cache::WorkerCache::new(L1_SLOTS, r.cache().config()))
}

/// Answers each worker keeps for itself: hot names, a few hundred KB.
const L1_SLOTS: usize = 4096;

/// A clone of a worker's socket for the update writer and the resolver
/// to answer from.
fn update_socket(sock: &UdpSocket) -> Option<Arc<UdpSocket>> {
    sock.try_clone()
        .map_err(|e| tracing::error!(error = %e, "cannot clone the UDP socket; UPDATEs over UDP go unanswered"))
        .ok()
        .map(Arc::new)
}

/// Hands an UPDATE to the writer (see `Shared::submit_update`); the
/// worker goes straight back to its queries. A panic while checking it
/// costs that UPDATE, as a panic on the query path costs that query.
fn submit_update(shared: &SharedRef, msg: &[u8], socket: Option<&Arc<UdpSocket>>, peer: std::net::SocketAddr) {
    let Some(socket) = socket else { return };
    let reply = crate::replicated::writer::Reply::Udp { socket: socket.clone(), peer };
    let _ = guarded(|| {
        shared.submit_update(msg, reply);
        Some(())
    });
}

/// The result of a receive, or `None` to try again: interruptions, and
/// errors such as ICMP port-unreachable from an earlier send surfacing on
/// this socket, must not stop the worker.
fn received<T>(result: std::io::Result<T>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => None,
        Err(e) => {
            tracing::debug!(error = %e, "udp receive error");
            None
        }
    }
}

/// Runs the answer path so that a bug that panics on some input costs that
/// one query (no reply, counted as dropped, logged) instead of the worker
/// thread: a handful of such queries must not take UDP service down.
fn guarded<T>(f: impl FnOnce() -> Option<T>) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => {
            tracing::error!("the answer path panicked on a query (a bug: please report it); no reply sent");
            None
        }
    }
}
