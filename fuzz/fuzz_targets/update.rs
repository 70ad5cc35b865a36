//! Any bytes as an RFC 2136 UPDATE: the parser and the stage that checks
//! TSIG and the key's scope must never panic, and a parse that succeeds
//! must hold owners no longer than a domain name may be.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use meshdns::replicated::update::{ScopedKeySpec, UpdateKeys, in_scope, parse_bytes, parse_keys, verify};

fn keys() -> &'static UpdateKeys {
    static KEYS: OnceLock<UpdateKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let scoped = ScopedKeySpec {
            name: "scoped".into(),
            secret: "c2VjcmV0c2VjcmV0".into(),
            zones: vec!["example.net".into()],
            names: vec!["dyn".into()],
            types: vec!["TXT".into()],
            ..Default::default()
        };
        parse_keys(&["hmac-sha256:k:MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=".into()], &[scoped]).expect("keys")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse_bytes(data) {
        assert!(req.zone.len() <= 255);
        for rr in req.prereq.iter().chain(&req.updates) {
            assert!(rr.owner.len() <= 255 && rr.rdata.len() <= 65535);
        }
        let keys = keys();
        if let Some(scope) = keys.scope(&"scoped.".parse().expect("name")) {
            let _ = in_scope(scope, &req);
        }
    }
    let _ = verify(data, keys());
});
