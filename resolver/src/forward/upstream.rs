//! Upstream addresses (`--forward URL`) and what we know of their health.

use std::net::SocketAddr;

use crate::exchange::Transport;
use crate::types::Millis;

/// One upstream resolver, as given by URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// The URL as written, for logs and `cache stats`.
    pub url: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// How to reach it.
    pub transport: Transport,
}

/// Why an upstream URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpstreamError {
    /// Not `scheme://…`.
    #[error("upstream {0:?} is not a URL: write udp://IP:PORT or tcp://IP:PORT")]
    NotAUrl(String),
    /// A scheme we do not speak (yet).
    #[error(
        "upstream {0:?}: the scheme {1:?} needs the encrypted transports, which this build does not have yet; \
         use udp://IP:PORT or tcp://IP:PORT"
    )]
    Encrypted(String, String),
    /// Something else.
    #[error("upstream {0:?}: unknown scheme {1:?}; use udp://IP:PORT or tcp://IP:PORT")]
    Scheme(String, String),
    /// The address part.
    #[error("upstream {0:?}: {1:?} is not IP:PORT (IPv6 as [::1]:53)")]
    Address(String, String),
}

impl Upstream {
    /// Parses `udp://IP:PORT` or `tcp://IP:PORT` (port 53 when left out).
    pub fn parse(url: &str) -> Result<Self, UpstreamError> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| UpstreamError::NotAUrl(url.to_owned()))?;
        let transport = match scheme {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" | "https" | "quic" | "h3" => {
                return Err(UpstreamError::Encrypted(url.to_owned(), scheme.to_owned()));
            }
            _ => return Err(UpstreamError::Scheme(url.to_owned(), scheme.to_owned())),
        };
        let rest = rest.trim_end_matches('/');
        let addr = rest
            .parse::<SocketAddr>()
            .or_else(|_| rest.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
            .map_err(|_| UpstreamError::Address(url.to_owned(), rest.to_owned()))?;
        Ok(Upstream { url: url.to_owned(), addr, transport })
    }
}

/// What the forwarder knows of one upstream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Health {
    /// Smoothed round-trip time in ms (EWMA, weight 1/8 as TCP's SRTT,
    /// RFC 6298 §2).
    pub srtt_ms: f64,
    /// Failures in a row (timeouts, SERVFAIL/REFUSED, broken replies).
    pub failures: u32,
    /// Marked down until this time; probed back after it.
    pub down_until: Option<Millis>,
    /// Queries sent, answers counted good, failures counted.
    pub sent: u64,
    /// Good answers.
    pub answered: u64,
}

impl Default for Health {
    fn default() -> Self {
        // Unknown upstreams start optimistic, so each is tried.
        Health { srtt_ms: 50.0, failures: 0, down_until: None, sent: 0, answered: 0 }
    }
}

impl Health {
    /// Is it usable at `now` (not down, or due for a probe)?
    pub fn up(&self, now: Millis) -> bool {
        self.down_until.is_none_or(|t| now >= t)
    }

    /// A good answer after `rtt_ms`.
    pub fn success(&mut self, rtt_ms: u64) {
        self.srtt_ms += (rtt_ms as f64 - self.srtt_ms) / 8.0;
        self.failures = 0;
        self.down_until = None;
        self.answered += 1;
    }

    /// A failure; after `down_after` in a row it is marked down for a
    /// while that doubles with each further failure (capped).
    pub fn failure(&mut self, now: Millis, timeout_ms: u64, down_after: u32, probe_ms: u64) {
        self.failures = self.failures.saturating_add(1);
        // A timeout says the RTT is at least the timeout.
        self.srtt_ms += (timeout_ms as f64 - self.srtt_ms) / 8.0;
        if self.failures >= down_after {
            let extra = self.failures.saturating_sub(down_after).min(5);
            self.down_until = Some(now + (probe_ms << extra).min(60_000));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_bad_ones_say_what_to_write() {
        let u = Upstream::parse("udp://127.0.0.1:5353").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((u.addr.port(), u.transport), (5353, Transport::Udp));
        assert_eq!(Upstream::parse("tcp://[::1]:53").map(|u| u.transport), Ok(Transport::Tcp));
        assert_eq!(Upstream::parse("udp://10.0.0.53").map(|u| u.addr.port()), Ok(53));
        assert!(matches!(Upstream::parse("10.0.0.53"), Err(UpstreamError::NotAUrl(_))));
        assert!(matches!(Upstream::parse("tls://1.1.1.1:853#one"), Err(UpstreamError::Encrypted(..))));
        assert!(matches!(Upstream::parse("udp://host:53"), Err(UpstreamError::Address(..))));
        let e = Upstream::parse("ftp://1.2.3.4").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("udp://IP:PORT"), "{e}");
    }

    #[test]
    fn an_upstream_goes_down_after_failures_and_comes_back_for_a_probe() {
        let mut h = Health::default();
        h.failure(0, 1000, 3, 1000);
        h.failure(0, 1000, 3, 1000);
        assert!(h.up(0));
        h.failure(0, 1000, 3, 1000);
        assert!(!h.up(500));
        assert!(h.up(1000));
        h.success(10);
        assert!(h.up(0) && h.failures == 0);
    }
}
