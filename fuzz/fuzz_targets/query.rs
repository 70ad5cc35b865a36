//! Any bytes as a DNS query: `answer` must never panic, and must stay
//! within the transport's size limit.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use meshdns::dns::auth::{AnswerConfig, Transport, answer};
use meshdns::zone::store::ZoneStore;

fn store() -> &'static ZoneStore {
    static STORE: OnceLock<ZoneStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("meshdns-fuzz-{}", std::process::id()));
        let zones = dir.join("zones");
        std::fs::create_dir_all(&zones).expect("temp dir");
        std::fs::write(zones.join(meshdns::zone::DEMO_ZONE_FILE), meshdns::zone::DEMO_ZONE).expect("demo zone");
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
