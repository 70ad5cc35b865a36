//! Any bytes as a DNS query: `answer` must never panic, and must stay
//! within the transport's size limit. Two zones with CNAMEs and a DNAME
//! between them, so chains that cross zones are reached too.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use meshdns::dns::auth::{AnswerConfig, Transport, answer};
use meshdns::zone::store::ZoneStore;

const SECOND: &str = "$ORIGIN io.\n@ SOA ns h 1 3600 600 86400 30\n@ NS ns\nns A 192.0.2.2\ncdn A 198.51.100.7\n\
back CNAME www.example.com.\ndn DNAME example.com.\n*.w TXT \"x\"\n";

fn store() -> &'static ZoneStore {
    static STORE: OnceLock<ZoneStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("meshdns-fuzz-{}", std::process::id()));
        let zones = dir.join("zones");
        std::fs::create_dir_all(&zones).expect("temp dir");
        let demo = meshdns::zone::DEMO_ZONE.to_owned() + "cross IN CNAME cdn.io.\nloop IN CNAME back.io.\n";
        std::fs::write(zones.join(meshdns::zone::DEMO_ZONE_FILE), demo).expect("demo zone");
        std::fs::write(zones.join("io.zone"), SECOND).expect("second zone");
        let store = ZoneStore::new(&zones, &dir.join("data"));
        assert_eq!(store.reload().expect("load").failures(), 0);
        store
    })
}

fuzz_target!(|data: &[u8]| {
    let mut out = vec![0u8; 65535];
    let zones = store().current();
    if let Some(a) = answer(data, &zones, &mut out, Transport::Udp, &AnswerConfig::default()) {
        assert!(a.len <= 1232);
    }
    let _ = answer(data, &zones, &mut out, Transport::Tcp, &AnswerConfig::default());
});
