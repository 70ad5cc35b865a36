//! NOTIFY (RFC 1996): tells configured secondaries when a zone's serial
//! changes, so they transfer at once instead of at their next refresh.
//!
//! Every zone served (from files or replicated) is watched; a change of
//! serial sends a NOTIFY to each `transfer.notify` target, retried a few
//! times until the target answers (§3.6), in the background.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::Shared;

/// How often serials are compared.
const POLL: Duration = Duration::from_millis(200);
/// Tries per target and change (RFC 1996 §3.6 suggests a few).
const TRIES: u32 = 5;

/// Watches the served zones and notifies `targets` of every change,
/// including each zone once at start.
pub async fn run(shared: Arc<Shared>, targets: Vec<SocketAddr>) {
    if targets.is_empty() {
        return;
    }
    let mut last: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut next_id: u16 = (std::process::id() & 0xffff) as u16;
    loop {
        let zones = shared.store.current_full();
        for z in zones.zones() {
            let (origin, serial) = (z.origin().to_vec(), z.serial());
            if last.get(&origin) == Some(&serial) {
                continue;
            }
            last.insert(origin.clone(), serial);
            for &target in &targets {
                next_id = next_id.wrapping_add(1);
                tokio::spawn(notify(origin.clone(), serial, target, next_id));
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The NOTIFY message for `origin`: opcode 4, AA, one question `origin SOA IN`.
pub fn message(origin: &[u8], id: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(12 + origin.len() + 4);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[(4 << 3) | 0x04, 0x00]); // opcode NOTIFY, AA
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend_from_slice(origin);
    m.extend_from_slice(&[0, 6, 0, 1]);
    m
}

async fn notify(origin: Vec<u8>, serial: u32, target: SocketAddr, id: u16) {
    let zone = crate::dns::wire::name::to_text(&origin);
    let bind: SocketAddr = if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let Ok(sock) = tokio::net::UdpSocket::bind(bind).await else { return };
    let msg = message(&origin, id);
    let mut buf = [0u8; 512];
    for attempt in 1..=TRIES {
        if sock.send_to(&msg, target).await.is_err() {
            break;
        }
        let wait = Duration::from_secs(u64::from(attempt));
        if let Ok(Ok((n, from))) = tokio::time::timeout(wait, sock.recv_from(&mut buf)).await
            && from == target
            && n >= 12
            && buf[..2] == id.to_be_bytes()
        {
            tracing::debug!(%zone, serial, %target, "NOTIFY acknowledged");
            return;
        }
    }
    tracing::warn!(%zone, serial, %target, "NOTIFY not acknowledged after {TRIES} tries");
}
