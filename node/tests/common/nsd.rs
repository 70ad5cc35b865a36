//! NSD (Debian package `nsd`) run beside meshdns for differential and
//! interoperability tests.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use super::*;

pub struct Nsd {
    pub conf: std::path::PathBuf,
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Drop for Nsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts NSD on a free loopback port with `zones` (name, file) and any
/// extra zone-clause lines, answering once `probe` has an SOA.
pub fn start_nsd_with(zones: &[(&str, &Path)], extra: &str, probe: &str) -> Nsd {
    start_nsd_on(free_port(), zones, extra, probe)
}

/// [`start_nsd_with`] on a given port (one told to meshdns beforehand, for NOTIFY).
pub fn start_nsd_on(port: u16, zones: &[(&str, &Path)], extra: &str, probe: &str) -> Nsd {
    assert!(
        Command::new("nsd").arg("-v").stderr(Stdio::null()).status().is_ok(),
        "NSD is not installed: run the README's test command (it installs nsd), or apt-get install -y nsd"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let mut conf = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  server-count: 1\n  username: \"\"\n  zonesdir: \"{d}\"\n  database: \"\"\n  pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  xfrdir: \"{d}\"\n  logfile: \"{d}/nsd.log\"\n  minimal-responses: yes\n  refuse-any: no\n  hide-version: yes\n  rrl-ratelimit: 0\n  verbosity: 1\nremote-control:\n  control-enable: yes\n  control-interface: \"{d}/nsd.ctl\"\n"
    );
    for (name, file) in zones {
        conf += &format!(
            "zone:\n  name: \"{name}\"\n  zonefile: \"{}\"\n  provide-xfr: 127.0.0.1 NOKEY\n{extra}",
            file.display()
        );
    }
    std::fs::write(dir.path().join("nsd.conf"), conf).unwrap();
    let child = Command::new("nsd")
        .args(["-d", "-c"])
        .arg(dir.path().join("nsd.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let conf = dir.path().join("nsd.conf");
    let nsd = Nsd { conf, child, addr, dir };
    let origin = probe;
    wait_for("NSD to answer", Duration::from_secs(30), || {
        let r = udp_exchange(nsd.addr, &query(origin, RecordType::SOA).to_vec().unwrap())?;
        (Message::from_vec(&r).ok()?.response_code() == ResponseCode::NoError).then_some(())
    });
    nsd
}

pub fn udp_exchange(addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.send_to(bytes, addr).ok()?;
    let mut buf = vec![0u8; 65535];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

/// All records of a zone by AXFR.
pub fn axfr(addr: SocketAddr, zone: &str) -> Vec<hickory_proto::rr::Record> {
    transfer(addr, &plain_query(zone, RecordType::AXFR))
}

/// `start_nsd_with` for primary zones, probing the first.
pub fn start_nsd(zones: &[(&str, &Path)]) -> Nsd {
    start_nsd_with(zones, "", zones[0].0)
}

impl Nsd {
    /// Runs `nsd-control` against this NSD.
    pub fn control(&self, args: &[&str]) -> String {
        let out = Command::new("nsd-control").arg("-c").arg(&self.conf).args(args).output().unwrap();
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }
}
