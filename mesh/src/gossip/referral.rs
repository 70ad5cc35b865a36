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
/// Concurrent exchanges per peer address.
const PER_PEER: usize = 4;
/// Time allowed for one exchange.
pub(crate) const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the newcomer sends.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    /// The cluster it wants to join: a seed of another cluster refuses.
    pub(crate) cluster: String,
    /// Who is asking (for the seed's logs).
    pub(crate) id: String,
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
        match serde_json::from_slice::<Answer>(&answer) {
            Ok(Answer::Contacts(c)) => Ok(c),
            Ok(Answer::Refused(why)) => Err(ReferralError::Refused(seed, why)),
            Err(e) => Err(ReferralError::Invalid(seed, e.to_string())),
        }
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .map_err(|_| ReferralError::Timeout(seed, EXCHANGE_TIMEOUT))?
}

/// Serves referrals on `listener` until the task is dropped. `contacts`
/// is called for each valid request of the right cluster.
pub(crate) async fn serve<F>(listener: TcpListener, cluster: String, auth: Option<Arc<GossipAuth>>, contacts: F)
where
    F: Fn() -> Vec<Contact> + Send + Sync + 'static,
{
    let contacts = std::sync::Arc::new(contacts);
    // A few concurrent exchanges are plenty: referrals happen at join time.
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    let per_peer: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>> =
        Default::default();
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "referral accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            continue; // dropped: the asker retries later
        };
        {
            let Ok(mut counts) = per_peer.lock() else { continue };
            let n = counts.entry(from.ip()).or_insert(0);
            if *n >= PER_PEER {
                continue; // one address cannot hold every slot
            }
            *n += 1;
        }
        let contacts = contacts.clone();
        let cluster = cluster.clone();
        let per_peer = per_peer.clone();
        let auth = auth.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let exchange = answer(stream, from, &cluster, auth.as_deref(), &*contacts);
            let _ = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await;
            if let Ok(mut counts) = per_peer.lock()
                && let Some(n) = counts.get_mut(&from.ip())
            {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&from.ip());
                }
            }
        });
    }
}

async fn answer(
    stream: TcpStream,
    from: SocketAddr,
    cluster: &str,
    auth: Option<&GossipAuth>,
    contacts: &(dyn Fn() -> Vec<Contact> + Send + Sync),
) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read).take(MAX_REQUEST);
    let mut line = String::new();
    match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(Ok(_)) => {}
        _ => return,
    }
    let Ok(line) = open_line(auth, Kind::ReferralRequest, &line) else {
        // Not sealed with a key of this cluster: say nothing (counted).
        tracing::debug!(%from, "refused an unauthenticated referral request");
        return;
    };
    let reply = match serde_json::from_slice::<Request>(&line) {
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
    if let Ok(mut bytes) =
        serde_json::to_vec(&reply).map_err(|e| e.to_string()).and_then(|j| seal_line(auth, Kind::ReferralAnswer, j))
    {
        bytes.push(b'\n');
        let _ = write.write_all(&bytes).await;
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
