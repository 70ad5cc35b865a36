//! Referrals: how a new node finds the pools above its site.
//!
//! Seeds are gossip addresses of any node in the cluster, in any site. A
//! seed in another site cannot admit the newcomer to its own site pool
//! (chitchat rejects a different cluster id), so besides chitchat's UDP
//! gossip on `PORT`, every node answers on TCP `PORT` with the members it
//! knows that gossip in upper pools (the representatives), plus its own
//! site. The newcomer then gossips straight into the pools it belongs in.
//!
//! One JSON line each way. Every read is bounded in size and time; a peer
//! that sends garbage is answered with an error and dropped. With a cluster
//! keyring each line is instead the hex of an authenticated envelope around
//! that JSON ([`crate::auth`]): a request that does not open is dropped
//! unanswered, and an answer that does not open is ignored.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::transport::GossipAuth;
use crate::auth::Kind;
use crate::facts::{NodeFacts, PeerRecord};
use crate::tier::Pool;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Largest request accepted.
const MAX_REQUEST: u64 = 4 * 1024;
/// Largest answer accepted (2,000 contacts of at most ~350 bytes each,
/// hex-encoded when authenticated).
const MAX_ANSWER: u64 = 4 * 1024 * 1024;
/// Time allowed to send the request line.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// Concurrent exchanges per source /24 (IPv4) or /64 (IPv6).
const PER_PEER: usize = 4;
/// Time allowed for one exchange.
pub(crate) const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the newcomer sends.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    /// The cluster it wants to join: a seed of another cluster refuses.
    pub cluster: String,
    /// Who is asking (for the seed's logs).
    pub id: String,
}

/// One member worth gossiping with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Node id.
    pub id: String,
    /// Region.
    pub region: String,
    /// Site.
    pub site: String,
    /// Base gossip address.
    pub gossip: SocketAddr,
    /// In its region's pool.
    pub region_pool: bool,
    /// In the global pool.
    pub global_pool: bool,
}

/// What the seed answers.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Answer {
    /// Members to gossip with.
    Contacts(Vec<Contact>),
    /// The request was refused, and why.
    Refused(String),
}

/// What a seed tells a newcomer: the live members it knows that gossip in
/// upper pools (the representatives), and the members of its own site.
pub fn contacts<'a>(me: &NodeFacts, records: impl Iterator<Item = &'a PeerRecord>) -> Vec<Contact> {
    records
        .filter(|r| r.liveness.is_live())
        .filter(|r| {
            let f = &r.facts;
            f.roles.region || f.roles.global || (f.region == me.region && f.site == me.site)
        })
        // At most ~350 bytes each: well inside the asker's 2 MiB limit.
        .take(2_000)
        .map(|r| {
            let f = &r.facts;
            Contact {
                id: f.id.clone(),
                region: f.region.clone(),
                site: f.site.clone(),
                gossip: f.gossip,
                region_pool: f.roles.region,
                global_pool: f.roles.global,
            }
        })
        .collect()
}

/// Where a node alone in `pool` gossips to find it: the pool addresses of
/// the live members it knows, and of those a seed referred, that belong in
/// that pool (its site's members, its region's or the global
/// representatives), in address order, without duplicates.
pub fn hint_targets<'a>(
    pool: &Pool,
    me: &str,
    records: impl Iterator<Item = &'a PeerRecord>,
    referred: &[Contact],
) -> Vec<SocketAddr> {
    let from_view = records.filter(|r| r.liveness.is_live()).map(|r| {
        let f = &r.facts;
        (f.id.as_str(), f.region.as_str(), f.site.as_str(), f.gossip, f.roles.region, f.roles.global)
    });
    let referred = referred
        .iter()
        .map(|c| (c.id.as_str(), c.region.as_str(), c.site.as_str(), c.gossip, c.region_pool, c.global_pool));
    let mut targets = std::collections::BTreeSet::new();
    for (id, region, site, gossip, in_region, in_global) in from_view.chain(referred) {
        if id == me {
            continue;
        }
        let fits = match pool {
            Pool::Site { region: r, site: s } => region == r && site == s,
            Pool::Region(r) => region == r && in_region,
            Pool::Global => in_global,
        };
        if let (true, Some(addr)) = (fits, super::pool_state::pool_addr(gossip, pool)) {
            targets.insert(addr);
        }
    }
    targets.into_iter().collect()
}

/// Gossip rounds after joining a pool during which a node keeps asking its
/// seeds often, even once it has a peer there. While a cluster forms, a
/// pool can come together as islands (two representatives that found each
/// other, and two others elsewhere): each island has a live peer, and the
/// seeds learn the other island's members only a few rounds later. Asking
/// again every [`REFERRAL_FAST`] for these rounds brings those members in;
/// waiting for [`REFERRAL_SLOW`] left such a cluster split for 30 s.
pub const FORMING_ROUNDS: u32 = 20;
/// How often a node asks its seeds while some pool is empty or forming.
pub const REFERRAL_FAST: Duration = Duration::from_secs(2);
/// How often a node asks its seeds once every pool it is in has formed
/// (heals partitions longer than the dead-member grace period).
pub const REFERRAL_SLOW: Duration = Duration::from_secs(30);

/// How long to wait between referrals: [`REFERRAL_FAST`] while some pool
/// has no other live member or was joined within [`FORMING_ROUNDS`]
/// rounds, [`REFERRAL_SLOW`] otherwise.
pub fn referral_interval(any_pool_lonely: bool, any_pool_forming: bool) -> Duration {
    if any_pool_lonely || any_pool_forming { REFERRAL_FAST } else { REFERRAL_SLOW }
}

/// The candidates of a pool ([`hint_targets`]) that are not live members
/// of it: the ones worth a gossip round now. Hinting only pools with no
/// live member at all (as before) left a pool split into islands until the
/// next slow referral.
pub fn missing_targets(targets: &[SocketAddr], live: &std::collections::BTreeSet<SocketAddr>) -> Vec<SocketAddr> {
    targets.iter().filter(|a| !live.contains(a)).copied().collect()
}

/// Why a referral failed.
#[derive(Debug, thiserror::Error)]
pub enum ReferralError {
    /// Could not reach the seed.
    #[error("seed {0} unreachable: {1}")]
    Unreachable(SocketAddr, std::io::Error),
    /// The seed took too long.
    #[error("seed {0} did not answer within {1:?}")]
    Timeout(SocketAddr, Duration),
    /// The seed answered something that is not a referral.
    #[error("seed {0} sent an invalid answer: {1}")]
    Invalid(SocketAddr, String),
    /// The seed refused (another cluster).
    #[error("seed {0} refused: {1}")]
    Refused(SocketAddr, String),
    /// The seed closed without a word: it could not authenticate the
    /// request (another cluster key), or it is shedding load.
    #[error(
        "seed {0} closed without answering: does it hold this node's cluster key (--gossip-key-file)? (or it is busy)"
    )]
    NoAnswer(SocketAddr),
}

/// Asks `seed` for contacts.
pub(crate) async fn ask(
    seed: SocketAddr,
    request: &Request,
    auth: Option<&GossipAuth>,
) -> Result<Vec<Contact>, ReferralError> {
    let exchange = async {
        let mut stream = TcpStream::connect(seed).await.map_err(|e| ReferralError::Unreachable(seed, e))?;
        let json = serde_json::to_vec(request).map_err(|e| ReferralError::Invalid(seed, e.to_string()))?;
        let mut line = seal_line(auth, Kind::ReferralRequest, json).map_err(|e| ReferralError::Invalid(seed, e))?;
        line.push(b'\n');
        stream.write_all(&line).await.map_err(|e| ReferralError::Unreachable(seed, e))?;
        let mut reader = BufReader::new(stream).take(MAX_ANSWER);
        let mut answer = String::new();
        reader.read_line(&mut answer).await.map_err(|e| ReferralError::Invalid(seed, e.to_string()))?;
        if answer.trim().is_empty() {
            return Err(ReferralError::NoAnswer(seed));
        }
        let answer = open_line(auth, Kind::ReferralAnswer, &answer).map_err(|e| ReferralError::Invalid(seed, e))?;
        read_answer(seed, &String::from_utf8_lossy(&answer))
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .map_err(|_| ReferralError::Timeout(seed, EXCHANGE_TIMEOUT))?
}

/// Exchanges at once, over all sources.
const MAX_EXCHANGES: usize = 64;

/// Which sources share a limit: an IPv4 /24 or an IPv6 /64 (one host
/// easily holds many addresses of its prefix).
fn source_group(ip: std::net::IpAddr) -> [u8; 8] {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            [4, o[0], o[1], o[2], 0, 0, 0, 0]
        }
        std::net::IpAddr::V6(v6) => {
            let o = v6.octets();
            [o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]]
        }
    }
}

/// The exchanges in progress. A real asker sends its request as soon as it
/// is connected, so a connection still silent is the first to go: when the
/// listener (or one source group) is full, the oldest connection still
/// waiting for its request is closed to admit the new one. Idle
/// connections can then delay a join by at most one request timeout, never
/// block it.
#[derive(Default)]
struct Slots {
    next: u64,
    open: std::collections::BTreeMap<u64, Slot>,
}

struct Slot {
    group: [u8; 8],
    waiting: bool,
    abort: Option<tokio::task::AbortHandle>,
}

impl Slots {
    /// Makes room for a connection from `group`; false if every slot it
    /// could take is busy answering.
    fn admit(&mut self, group: [u8; 8]) -> bool {
        let in_group = self.open.values().filter(|s| s.group == group).count();
        let evict_from = if in_group >= PER_PEER {
            Some(group)
        } else if self.open.len() >= MAX_EXCHANGES {
            None
        } else {
            return true;
        };
        let victim = self
            .open
            .iter()
            .find(|(_, s)| s.waiting && s.abort.is_some() && evict_from.is_none_or(|g| s.group == g))
            .map(|(id, _)| *id);
        let Some(id) = victim else { return false };
        if let Some(slot) = self.open.remove(&id)
            && let Some(abort) = slot.abort
        {
            abort.abort();
        }
        true
    }
}

/// Frees a slot when its exchange ends, however it ends.
struct SlotGuard {
    id: u64,
    slots: std::sync::Arc<std::sync::Mutex<Slots>>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Ok(mut s) = self.slots.lock() {
            s.open.remove(&self.id);
        }
    }
}

/// Serves referrals on `listener` until the task is dropped. `contacts`
/// is called for each valid request of the right cluster.
///
/// Who may use it: anyone who can reach the TCP port (the cluster name in
/// the request is what a seed checks). What bounds it: [`MAX_EXCHANGES`]
/// at once, [`PER_PEER`] per source /24 (IPv4) or /64 (IPv6), the oldest
/// silent connection closed first when full, the request read within
/// [`REQUEST_TIMEOUT`] and at most [`MAX_REQUEST`] bytes, and the whole
/// exchange within [`EXCHANGE_TIMEOUT`].
pub(crate) async fn serve<F>(listener: Arc<TcpListener>, cluster: String, auth: Option<Arc<GossipAuth>>, contacts: F)
where
    F: Fn() -> Vec<Contact> + Send + Sync + 'static,
{
    let contacts = std::sync::Arc::new(contacts);
    let slots: std::sync::Arc<std::sync::Mutex<Slots>> = Default::default();
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "referral accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let group = source_group(from.ip());
        let id = {
            let Ok(mut s) = slots.lock() else { continue };
            if !s.admit(group) {
                continue; // dropped: every slot is busy answering; the asker retries
            }
            s.next += 1;
            let id = s.next;
            s.open.insert(id, Slot { group, waiting: true, abort: None });
            id
        };
        let contacts = contacts.clone();
        let cluster = cluster.clone();
        let guard = SlotGuard { id, slots: slots.clone() };
        let auth = auth.clone();
        let task = tokio::spawn(async move {
            let guard = guard;
            let heard = || {
                if let Ok(mut s) = guard.slots.lock()
                    && let Some(slot) = s.open.get_mut(&guard.id)
                {
                    slot.waiting = false;
                }
            };
            let exchange = answer(stream, from, &cluster, auth.as_deref(), &*contacts, heard);
            let _ = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await;
        });
        if let Ok(mut s) = slots.lock()
            && let Some(slot) = s.open.get_mut(&id)
        {
            slot.abort = Some(task.abort_handle());
        }
    }
}

async fn answer(
    stream: TcpStream,
    from: SocketAddr,
    cluster: &str,
    auth: Option<&GossipAuth>,
    contacts: &(dyn Fn() -> Vec<Contact> + Send + Sync),
    heard: impl FnOnce(),
) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read).take(MAX_REQUEST);
    let mut line = String::new();
    match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(Ok(_)) => heard(),
        _ => return,
    }
    let Ok(line) = open_line(auth, Kind::ReferralRequest, &line) else {
        // Not sealed with a key of this cluster: say nothing (counted).
        tracing::debug!(%from, "refused an unauthenticated referral request");
        return;
    };
    let mut json = answer_line(from, &String::from_utf8_lossy(&line), cluster, contacts);
    json.pop(); // the newline: the line sealed is the JSON alone
    if let Ok(mut bytes) = seal_line(auth, Kind::ReferralAnswer, json) {
        bytes.push(b'\n');
        let _ = write.write_all(&bytes).await;
    }
}

/// What a seed answers to the request `line` from `from`: one JSON line
/// (sans-IO, so the fuzz target and the tests run the exact server logic).
pub fn answer_line(from: SocketAddr, line: &str, cluster: &str, contacts: &dyn Fn() -> Vec<Contact>) -> Vec<u8> {
    let reply = match serde_json::from_str::<Request>(line) {
        Ok(req) if req.cluster == cluster => {
            tracing::debug!(%from, asker = %req.id, "referral");
            Answer::Contacts(contacts())
        }
        Ok(req) => {
            tracing::warn!(%from, asker = %req.id, their_cluster = %req.cluster, "refused a node of another cluster");
            // The cluster name is not given away: it is what admits a node.
            Answer::Refused(format!("this node does not belong to cluster {:?}", req.cluster))
        }
        Err(_) => Answer::Refused("not a meshdns referral request".to_owned()),
    };
    let mut bytes = serde_json::to_vec(&reply).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Reads a seed's answer line (sans-IO; see [`answer_line`]).
pub fn read_answer(seed: SocketAddr, line: &str) -> Result<Vec<Contact>, ReferralError> {
    match serde_json::from_str::<Answer>(line) {
        Ok(Answer::Contacts(c)) => Ok(c),
        Ok(Answer::Refused(why)) => Err(ReferralError::Refused(seed, why)),
        Err(e) => Err(ReferralError::Invalid(seed, e.to_string())),
    }
}

/// The line that carries `json`: itself, or the hex of its envelope.
fn seal_line(auth: Option<&GossipAuth>, kind: Kind, json: Vec<u8>) -> Result<Vec<u8>, String> {
    let Some(auth) = auth else { return Ok(json) };
    let mut sealed = Vec::new();
    auth.seal(kind, &json, &mut sealed).map_err(|e| e.to_string())?;
    Ok(sealed.iter().flat_map(|b| [HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]).collect())
}

/// The JSON a received line carries, checked against the keyring if there is one.
fn open_line(auth: Option<&GossipAuth>, kind: Kind, line: &str) -> Result<Vec<u8>, String> {
    let line = line.trim_end();
    let Some(auth) = auth else { return Ok(line.as_bytes().to_vec()) };
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let bytes: Option<Vec<u8>> = line
        .as_bytes()
        .chunks(2)
        .map(|p| if p.len() == 2 { Some(digit(p[0])? << 4 | digit(p[1])?) } else { None })
        .collect();
    // Malformed hex is refused (and counted) like any other bad envelope.
    let bytes = bytes.unwrap_or_default();
    auth.open(kind, &bytes)
        .map(<[u8]>::to_vec)
        .map_err(|why| format!("not authenticated by this cluster's keyring ({})", why.as_str()))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(slots: &mut Slots, group: [u8; 8], waiting: bool, abort: tokio::task::AbortHandle) -> u64 {
        slots.next += 1;
        slots.open.insert(slots.next, Slot { group, waiting, abort: Some(abort) });
        slots.next
    }

    /// A full source group closes its oldest silent connection for a new
    /// one; one answering (not silent) is never closed, and then the
    /// newcomer is refused.
    #[tokio::test]
    async fn a_full_source_evicts_its_oldest_silent_connection() {
        let idle = || tokio::spawn(std::future::pending::<()>());
        let a = source_group("127.0.0.5".parse().unwrap());
        assert_eq!(a, source_group("127.0.0.77".parse().unwrap()), "one /24, one group");
        let mut slots = Slots::default();
        let tasks: Vec<_> = (0..PER_PEER).map(|_| idle()).collect();
        let ids: Vec<u64> = tasks.iter().map(|t| slot(&mut slots, a, true, t.abort_handle())).collect();
        assert!(slots.admit(a), "room made");
        assert!(!slots.open.contains_key(&ids[0]), "the oldest silent one went");
        tokio::task::yield_now().await;
        assert!(tasks[0].is_finished(), "and its task was stopped");
        for id in &ids[1..] {
            slots.open.get_mut(id).unwrap().waiting = false;
        }
        let t = idle();
        slot(&mut slots, a, false, t.abort_handle());
        assert!(!slots.admit(a), "every slot answering: the newcomer waits");
        // Another source is not affected by this one's share.
        assert!(slots.admit(source_group("10.0.0.1".parse().unwrap())));
    }

    /// The listener as a whole: 64 silent connections from many sources
    /// never lock out a newcomer.
    #[tokio::test]
    async fn a_full_listener_evicts_the_oldest_silent_connection() {
        let mut slots = Slots::default();
        let mut tasks = Vec::new();
        for i in 0..MAX_EXCHANGES {
            let t = tokio::spawn(std::future::pending::<()>());
            let group = source_group(std::net::IpAddr::from([10, 0, i as u8, 1]));
            slot(&mut slots, group, true, t.abort_handle());
            tasks.push(t);
        }
        assert!(slots.admit(source_group("192.0.2.1".parse().unwrap())));
        assert_eq!(slots.open.len(), MAX_EXCHANGES - 1);
    }

    #[test]
    fn islands_are_hinted_and_young_pools_ask_often() {
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2000".parse().unwrap();
        let live: std::collections::BTreeSet<SocketAddr> = [a].into();
        assert_eq!(missing_targets(&[a, b], &live), vec![b], "a pool with a live peer still hints the missing one");
        assert_eq!(referral_interval(false, true), REFERRAL_FAST);
        assert_eq!(referral_interval(true, false), REFERRAL_FAST);
        assert_eq!(referral_interval(false, false), REFERRAL_SLOW);
    }
}
