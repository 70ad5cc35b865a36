//! The audit entry of an RFC 2136 UPDATE, read from the request and the
//! answer alone, so the UPDATE code needs a single call to be audited.

use domain::base::Message;
use domain::base::iana::{Rcode, Rtype};

use super::audit::Action;

/// What to record for the UPDATE `query` answered with `reply` (`None`:
/// not answered at all). The actor is the TSIG key the request names
/// (`tsig:NAME`), or `unsigned`; whether its signature held shows in the
/// result (`denied` for NOTAUTH or REFUSED).
pub fn action(query: &[u8], reply: Option<&[u8]>, peer: Option<std::net::SocketAddr>) -> Action {
    let msg = Message::from_octets(query);
    let zone = msg
        .as_ref()
        .ok()
        .and_then(|m| m.first_question())
        .map(|q| q.qname().to_string())
        .map(|z| if z.ends_with('.') { z } else { format!("{z}.") });
    let key = msg.as_ref().ok().and_then(|m| {
        let additional = m.additional().ok()?;
        additional.flatten().filter(|r| r.rtype() == Rtype::TSIG).last().map(|r| r.owner().to_string())
    });
    let changes = msg.as_ref().ok().map_or(0, |m| m.header_counts().nscount());
    let rcode = reply.and_then(|r| Message::from_octets(r).ok()).map(|m| m.header().rcode());
    let result = match rcode {
        Some(Rcode::NOERROR) => "ok",
        Some(Rcode::NOTAUTH | Rcode::REFUSED) => "denied",
        _ => "error",
    };
    let rcode_text = rcode.map_or_else(|| "no answer".to_owned(), |r| r.to_string());
    Action {
        actor: key.map_or_else(|| "unsigned".to_owned(), |k| format!("tsig:{}", k.trim_end_matches('.'))),
        peer: peer.map(|p| p.to_string()),
        action: "dns.update".into(),
        zone,
        result: result.into(),
        detail: format!("{changes} update record(s), rcode {rcode_text}"),
    }
}

/// What to record for an UPDATE whose signature held (key `key`) and that
/// was applied to `zone` with `rcode`: for code that has these at hand
/// rather than the request's bytes (an update writer).
pub fn applied(key: &str, zone: &str, rcode: Rcode, peer: Option<std::net::SocketAddr>) -> Action {
    Action {
        actor: format!("tsig:{}", key.trim_end_matches('.')),
        peer: peer.map(|p| p.to_string()),
        action: "dns.update".into(),
        zone: Some(if zone.ends_with('.') { zone.to_owned() } else { format!("{zone}.") }),
        result: if rcode == Rcode::NOERROR { "ok" } else { "error" }.into(),
        detail: format!("rcode {rcode}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unparsable_update_is_still_recorded() {
        let a = action(b"\x00\x01", None, None);
        assert_eq!((a.actor.as_str(), a.result.as_str(), a.zone), ("unsigned", "error", None));
        let a = applied("ddns-key.", "example.net", Rcode::NOERROR, None);
        assert_eq!(
            (a.actor.as_str(), a.zone.as_deref(), a.result.as_str()),
            ("tsig:ddns-key", Some("example.net."), "ok")
        );
    }
}
