//! Knot DNS (Debian package `knot`) run beside meshdns for differential
//! tests.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use super::nsd::udp_exchange;
use super::*;

pub struct Knot {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts knotd on a free loopback port serving `zones` (name, file) as
/// primaries, answering once every zone has an SOA. Semantic checks are
/// off so zones meshdns accepts with warnings load in Knot too; the zone
/// files are read as they are (no journal, no signing, no RRL).
pub fn start_knot(zones: &[(&str, &Path)]) -> Knot {
    assert!(
        Command::new("knotd").arg("--version").stdout(Stdio::null()).status().is_ok(),
        "Knot DNS is not installed: run the README's test command (it installs knot), or apt-get install -y knot"
    );
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let mut conf = format!(
        "server:\n  listen: 127.0.0.1@{port}\n  rundir: \"{d}\"\n  background-workers: 1\n  udp-workers: 1\n  tcp-workers: 1\n\
         database:\n  storage: \"{d}/db\"\nlog:\n  - target: \"{d}/knot.log\"\n    any: info\n\
         template:\n  - id: default\n    storage: \"{d}\"\n    zonefile-load: whole\n    zonefile-sync: -1\n    journal-content: none\n    semantic-checks: off\n\
         acl:\n  - id: local_xfr\n    address: 127.0.0.1\n    action: transfer\nzone:\n"
    );
    for (name, file) in zones {
        conf += &format!("  - domain: \"{name}\"\n    file: \"{}\"\n    acl: local_xfr\n", file.display());
    }
    std::fs::write(dir.path().join("knot.conf"), conf).unwrap();
    let child = Command::new("knotd")
        .arg("-c")
        .arg(dir.path().join("knot.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let knot = Knot { child, addr, dir };
    for (name, _) in zones {
        wait_for(&format!("Knot to serve {name}"), Duration::from_secs(60), || {
            let r = udp_exchange(knot.addr, &query(name, RecordType::SOA).to_vec().unwrap())?;
            let m = Message::from_vec(&r).ok()?;
            (m.response_code() == ResponseCode::NoError && !m.answers().is_empty()).then_some(())
        });
    }
    knot
}
