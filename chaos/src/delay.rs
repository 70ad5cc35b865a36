//! Link latency without `tc netem`: this machine's kernel has no netem
//! qdisc, so each region router sends the packets it forwards between
//! sites (queue 1) and to other regions (queue 2) through NFQUEUE to a
//! small process of ours (`meshdns-chaos delay`, one per router
//! namespace), which gives each packet back to the kernel (verdict
//! accept) after the tier's latency plus jitter. Only the router a packet
//! leaves its region by delays it, so each direction is delayed once:
//! one-way latency is the tier's figure, a round trip twice it.
//!
//! Each tier may also lose a steady fraction of its packets
//! (`network.region_loss`, `network.global_loss`), dropped on arrival.
//!
//! Packets of one queue keep their order (a release is never earlier than
//! the one before), as a real link does. The iptables rules carry
//! `--queue-bypass`: were this process gone, packets would flow undelayed
//! rather than be dropped, and the run reports the delays it measured.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use nfq::{Queue, Verdict};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::netns::{self, CommandError};
use crate::scenario::{Network, Topology};
use crate::topology;

/// Queue of packets between sites of one region.
pub const REGION_QUEUE: u16 = 1;
/// Queue of packets leaving the region.
pub const GLOBAL_QUEUE: u16 = 2;

/// The iptables rules sending a router's forwarded traffic to the queues
/// (run inside the router namespace). The harness's own traffic
/// (`10.0.0.0/24`) is not delayed.
///
/// Rules match on subnets, not interfaces: with bridge netfilter on, a
/// packet between two nodes of one site crosses FORWARD too (bridged, in
/// and out on the site's bridge), and must not be delayed.
pub fn install_rules(t: &Topology, region: usize) -> Result<(), CommandError> {
    let router = topology::router_ns(region);
    let q = |args: &[&str]| -> Result<(), CommandError> {
        let mut all = vec!["ip", "netns", "exec", &router, "iptables", "-A", "FORWARD"];
        all.extend_from_slice(args);
        netns::run(&all).map(|_| ())
    };
    let region_net = topology::region_net(region);
    // First match wins: a site's own traffic passes, the rest of the
    // region's is delayed by the region's latency, what leaves the region
    // (but for the harness) by the global one.
    for s in 0..t.sites_per_region {
        let site = topology::site_net(region, s);
        q(&["-s", &site, "-d", &site, "-j", "ACCEPT"])?;
    }
    q(&["-s", &region_net, "-d", &region_net, "-j", "NFQUEUE", "--queue-num", "1", "--queue-bypass"])?;
    q(&["-s", &region_net, "!", "-d", "10.0.0.0/24", "-j", "NFQUEUE", "--queue-num", "2", "--queue-bypass"])?;
    Ok(())
}

/// Gives `msg` back to the kernel with `verdict`. The kernel forgets a
/// held packet whose device or namespace went away (ENOENT): nothing to
/// decide then.
fn decide(queue: &mut Queue, mut msg: nfq::Message, verdict: Verdict) -> std::io::Result<()> {
    msg.set_verdict(verdict);
    match queue.verdict(msg) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Serves both queues until killed: each packet is accepted after the
/// latency of its queue's tier.
pub fn serve(net: &Network, seed: u64) -> std::io::Result<()> {
    let mut queue = Queue::open()?;
    queue.bind(REGION_QUEUE)?;
    queue.bind(GLOBAL_QUEUE)?;
    for q in [REGION_QUEUE, GLOBAL_QUEUE] {
        queue.set_queue_max_len(q, 8192)?;
        // Were we too slow, the kernel accepts rather than drops.
        queue.set_fail_open(q, true)?;
    }
    queue.set_nonblocking(true);
    let mut rng = StdRng::seed_from_u64(seed);
    // (latency ms, loss) of a queue's tier.
    let tier = |q: u16| {
        if q == GLOBAL_QUEUE { (net.global_ms, net.global_loss) } else { (net.region_ms, net.region_loss) }
    };
    // Per queue: (release at, packet), in release order.
    let mut held: [VecDeque<(Instant, nfq::Message)>; 2] = [VecDeque::new(), VecDeque::new()];
    loop {
        let mut got = false;
        loop {
            match queue.recv() {
                Ok(msg) => {
                    got = true;
                    let q = msg.get_queue_num();
                    let (base_ms, loss) = tier(q);
                    if loss > 0.0 && rng.random_bool(loss) {
                        // The tier's steady loss: dropped now, as a lossy
                        // link would.
                        decide(&mut queue, msg, Verdict::Drop)?;
                        continue;
                    }
                    let ms = base_ms * (1.0 + net.jitter * rng.random_range(-1.0..=1.0));
                    let slot = usize::from(q == GLOBAL_QUEUE);
                    let mut at = Instant::now() + Duration::from_secs_f64(ms.max(0.0) / 1e3);
                    if let Some((last, _)) = held[slot].back() {
                        at = at.max(*last);
                    }
                    held[slot].push_back((at, msg));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // Netlink reports errors of earlier verdicts on the same
                // socket (ENOENT: a packet the kernel already let go, e.g.
                // when its socket's process was killed). Not fatal.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        let now = Instant::now();
        for h in &mut held {
            while h.front().is_some_and(|(at, _)| *at <= now) {
                if let Some((_, msg)) = h.pop_front() {
                    decide(&mut queue, msg, Verdict::Accept)?;
                }
            }
        }
        if !got {
            // A quarter of a millisecond: well under the smallest latency
            // of interest, and idle enough on two cores.
            std::thread::sleep(Duration::from_micros(250));
        }
    }
}
