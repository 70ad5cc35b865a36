//! Key rollovers on a running lab, for RFC 5011 tests: the root's zone is
//! signed again with another key, and both root servers reload it.

use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use super::zones::{keygen, run};
use super::{Flags, Lab, exchange, query_msg};

impl Lab {
    /// Publishes a new KSK in the root (RFC 5011's new trust anchor): the
    /// root zone is signed again with its KSK, its ZSK and a fresh KSK,
    /// serial + 1, and both root servers reload it; returns once both
    /// serve three DNSKEYs, with the new key's tag.
    #[allow(clippy::disallowed_methods)] // signatures are dated from the real clock
    pub fn add_root_ksk(&mut self) -> u16 {
        let dir = self.dir().to_owned();
        let keys = dir.join("keys");
        let new = keygen(&keys, ".", true);
        let tag: u16 = new.rsplit('+').next().and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("key {new}"));
        let unsigned = dir.join("root.zone");
        let text = std::fs::read_to_string(&unsigned).unwrap();
        assert!(text.contains(" 2026010101 "), "the root's serial moved: update add_root_ksk");
        std::fs::write(&unsigned, text.replace(" 2026010101 ", " 2026010102 ")).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let mut cmd = Command::new("ldns-signzone");
        cmd.args(["-i", &(now - 3600).to_string(), "-o", "."]).arg("-f").arg(dir.join("root.signed")).arg(&unsigned);
        cmd.args(self.root_keys.iter().chain([&new]).map(|k| keys.join(k)));
        run(&mut cmd);
        // NSD and Knot both reload changed zone files on SIGHUP.
        let net = format!("127.53.{}.", self.n);
        for d in self.daemons.iter().filter(|d| d.name == format!("nsd@{net}1") || d.name == format!("knot@{net}2")) {
            let ok = Command::new("kill").args(["-HUP", &d.child.id().to_string()]).status().unwrap();
            assert!(ok.success(), "SIGHUP to {}", d.name);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        for host in [1, 2] {
            loop {
                let q = query_msg(".", RecordType::DNSKEY, Flags { dnssec_ok: true, ..Flags::default() });
                let keys = exchange(self.server(host), &q, Duration::from_millis(500))
                    .map(|m| m.answers().iter().filter(|r| r.record_type() == RecordType::DNSKEY).count());
                if keys == Ok(3) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "root server {host} did not load the new KSK: {keys:?}\n{}",
                    self.logs()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        tag
    }
}
