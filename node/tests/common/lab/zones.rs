//! The lab's zone files, and the signing pipeline that turns them into a
//! DNSSEC chain from the root down (children first, so each parent gets
//! its children's DS records before it is signed).
//!
//! Addresses in the templates are written `%NET%x`; [`Zones::write`]
//! replaces `%NET%` with the lab's `127.53.N.` prefix.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A zone: its name, its unsigned text, and how it is signed.
struct ZoneDef {
    name: &'static str,
    text: &'static str,
    sign: Sign,
}

#[derive(Clone, Copy, PartialEq)]
enum Sign {
    Unsigned,
    /// NSEC (RFC 4034 §4).
    Nsec,
    /// NSEC3 (RFC 5155), no opt-out, 0 iterations, no salt (RFC 9276).
    Nsec3,
    /// NSEC3 with the opt-out flag on every NSEC3 (RFC 5155 §6).
    Nsec3OptOut,
    /// NSEC, with signatures that expired in 2020.
    Expired,
}

const ROOT: &str = "$ORIGIN .
$TTL 86400
. SOA a.root-servers.lab. hostmaster.lab. 2026010101 1800 900 604800 3600
. NS a.root-servers.lab.
. NS b.root-servers.lab.
a.root-servers.lab. A %NET%1
b.root-servers.lab. A %NET%2
lab. NS ns.lab.
ns.lab. A %NET%3
testlab. NS ns.testlab.
ns.testlab. A %NET%3
example. NS ns.example.
ns.example. A %NET%3
insecure. NS ns.insecure.
ns.insecure. A %NET%3
sec. NS ns1.sec.
ns1.sec. A %NET%4
";

const LAB: &str = "$ORIGIN lab.
$TTL 3600
@ SOA ns hostmaster 2026010101 3600 900 604800 300
@ NS ns
ns A %NET%3
a.root-servers A %NET%1
b.root-servers A %NET%2
";

const TEST: &str = "$ORIGIN testlab.
$TTL 3600
@ SOA ns hostmaster 2026010101 3600 900 604800 300
@ NS ns
ns A %NET%3
www A %NET%200
cname NS ns.cname
ns.cname A %NET%6
wild NS ns.wild
ns.wild A %NET%6
lame NS a.ns.lame
lame NS b.ns.lame
a.ns.lame A %NET%7
b.ns.lame A %NET%6
dead NS a.ns.dead
dead NS b.ns.dead
a.ns.dead A %NET%8
b.ns.dead A %NET%6
alllame NS ns.alllame
ns.alllame A %NET%7
glueless NS ns.hosts.example.
";

const EXAMPLE: &str = "$ORIGIN example.
$TTL 3600
@ SOA ns hostmaster 2026010101 3600 900 604800 300
@ NS ns
ns A %NET%3
dest NS ns.dest
ns.dest A %NET%6
hosts NS ns.hosts
ns.hosts A %NET%6
fwd NS ns.fwd
ns.fwd A %NET%6
";

const INSECURE_TLD: &str = "$ORIGIN insecure.
$TTL 3600
@ SOA ns hostmaster 2026010101 3600 900 604800 300
@ NS ns
ns A %NET%3
www A %NET%201
";

const SEC: &str = "$ORIGIN sec.
$TTL 3600
@ SOA ns1 hostmaster 2026010101 3600 900 604800 300
@ NS ns1
ns1 A %NET%4
www A %NET%202
*.wild A %NET%217
x.ent A %NET%218
good NS ns.good
ns.good A %NET%5
nsec3 NS ns.nsec3
ns.nsec3 A %NET%5
bogus-ds NS ns.bogus-ds
ns.bogus-ds A %NET%5
expired NS ns.expired
ns.expired A %NET%5
insecure NS ns.insecure
ns.insecure A %NET%6
";

const GOOD: &str = "$ORIGIN good.sec.
$TTL 3600
@ SOA ns hostmaster 2026010101 3600 900 604800 300
@ NS ns
ns A %NET%5
www A %NET%203
txt TXT \"only text here\"
*.wild A %NET%204
alias CNAME www.nsec3.sec.
to-insecure CNAME www.insecure.sec.
d DNAME nsec3.sec.
dangling CNAME nope.sec.
x.ent A %NET%219
";

const NSEC3Z: &str = "$ORIGIN nsec3.sec.
$TTL 3600
@ SOA ns hostmaster 2026010101 3600 900 604800 300
@ NS ns
ns A %NET%5
www A %NET%205
txt TXT \"only text here\"
*.wild A %NET%206
unsigned NS ns.unsigned
ns.unsigned A %NET%6
";

const BOGUS_DS: &str = "$ORIGIN bogus-ds.sec.
$TTL 3600
@ SOA ns hostmaster 2026010101 3600 900 604800 300
@ NS ns
ns A %NET%5
www A %NET%207
";

const EXPIRED: &str = "$ORIGIN expired.sec.
$TTL 3600
@ SOA ns hostmaster 2026010101 3600 900 604800 300
@ NS ns
ns A %NET%5
www A %NET%208
";

const INSECURE_SEC: &str = "$ORIGIN insecure.sec.
$TTL 3600
@ SOA ns hostmaster 2026010101 3600 900 604800 300
@ NS ns
ns A %NET%6
www A %NET%209
";

const UNSIGNED_NSEC3: &str = "$ORIGIN unsigned.nsec3.sec.
$TTL 3600
@ SOA ns hostmaster 2026010101 3600 900 604800 300
@ NS ns
ns A %NET%6
www A %NET%210
";

const CNAME_TEST: &str = "$ORIGIN cname.testlab.
$TTL 3600
@ SOA ns hostmaster 2026010101 3600 900 604800 300
@ NS ns
ns A %NET%6
www CNAME www.dest.example.
chain CNAME c2.dest.example.
d DNAME dest.example.
dangling CNAME nope.dest.example.
";

const WILD_TEST: &str = "$ORIGIN wild.testlab.
$TTL 3600
@ SOA ns hostmaster 2026010101 3600 900 604800 300
@ NS ns
ns A %NET%6
* A %NET%211
";

const LAME_TEST: &str = "$ORIGIN lame.testlab.
$TTL 3600
@ SOA b.ns hostmaster 2026010101 3600 900 604800 300
@ NS a.ns
@ NS b.ns
a.ns A %NET%7
b.ns A %NET%6
www A %NET%212
";

const DEAD_TEST: &str = "$ORIGIN dead.testlab.
$TTL 3600
@ SOA b.ns hostmaster 2026010101 3600 900 604800 300
@ NS a.ns
@ NS b.ns
a.ns A %NET%8
b.ns A %NET%6
www A %NET%213
";

const GLUELESS_TEST: &str = "$ORIGIN glueless.testlab.
$TTL 3600
@ SOA ns.hosts.example. hostmaster 2026010101 3600 900 604800 300
@ NS ns.hosts.example.
www A %NET%214
";

const DEST_EXAMPLE: &str = "$ORIGIN dest.example.
$TTL 3600
@ SOA ns hostmaster 2026010101 3600 900 604800 300
@ NS ns
ns A %NET%6
www A %NET%215
c2 CNAME www.good.sec.
txt TXT \"only text here\"
";

const HOSTS_EXAMPLE: &str = "$ORIGIN hosts.example.
$TTL 3600
@ SOA ns hostmaster 2026010101 3600 900 604800 300
@ NS ns
ns A %NET%6
";

/// The plain zone a forward-mode test can use as its authoritative upstream.
pub const FWD_ZONE: &str = "fwd.example.";

const FWD_EXAMPLE: &str = "$ORIGIN fwd.example.
$TTL 3600
@ SOA ns hostmaster 2026010101 3600 900 604800 300
@ NS ns
ns A %NET%6
www A %NET%216
txt TXT \"forwarded\"
";

/// Where each zone is served: `(server host number, zone names)`.
/// Server kinds (NSD or Knot) are chosen in `lab.rs`.
pub const SERVERS: &[(u8, &[&str])] = &[
    (1, &["."]),
    (2, &["."]),
    (3, &["lab.", "testlab.", "example.", "insecure."]),
    (4, &["sec."]),
    (5, &["good.sec.", "nsec3.sec.", "bogus-ds.sec.", "expired.sec."]),
    (
        6,
        &[
            "insecure.sec.",
            "unsigned.nsec3.sec.",
            "cname.testlab.",
            "wild.testlab.",
            "lame.testlab.",
            "dead.testlab.",
            "glueless.testlab.",
            "dest.example.",
            "hosts.example.",
            "fwd.example.",
        ],
    ),
];

fn defs() -> Vec<ZoneDef> {
    use Sign::*;
    let z = |name, text, sign| ZoneDef { name, text, sign };
    vec![
        z("lab.", LAB, Unsigned),
        z("testlab.", TEST, Unsigned),
        z("example.", EXAMPLE, Unsigned),
        z("insecure.", INSECURE_TLD, Unsigned),
        z("insecure.sec.", INSECURE_SEC, Unsigned),
        z("unsigned.nsec3.sec.", UNSIGNED_NSEC3, Unsigned),
        z("cname.testlab.", CNAME_TEST, Unsigned),
        z("wild.testlab.", WILD_TEST, Unsigned),
        z("lame.testlab.", LAME_TEST, Unsigned),
        z("dead.testlab.", DEAD_TEST, Unsigned),
        z("glueless.testlab.", GLUELESS_TEST, Unsigned),
        z("dest.example.", DEST_EXAMPLE, Unsigned),
        z("hosts.example.", HOSTS_EXAMPLE, Unsigned),
        z("fwd.example.", FWD_EXAMPLE, Unsigned),
        // Signed, children before parents.
        z("good.sec.", GOOD, Nsec),
        z("nsec3.sec.", NSEC3Z, Nsec3OptOut),
        z("bogus-ds.sec.", BOGUS_DS, Nsec),
        z("expired.sec.", EXPIRED, Expired),
        z("sec.", SEC, Nsec3),
        z(".", ROOT, Nsec),
    ]
}

/// A TXT RRset of eight 250-octet strings: about 2 KB, more than the
/// 1232-octet EDNS buffer everyone advertises, so a UDP answer is
/// truncated (RFC 1035 §4.2.1 TC) and the resolver must retry over TCP.
fn big_txt(owner: &str) -> String {
    (0..8).map(|i| format!("{owner} TXT \"{}{}\"\n", i, "x".repeat(249))).collect()
}

/// The zone files written for a lab: zone name → file path.
pub struct Zones {
    pub files: Vec<(String, PathBuf)>,
    /// The root's KSK as a DS record, zone-file format.
    pub trust_anchor: String,
    /// The root's keys (KSK, ZSK): base names of ldns key files in `keys/`.
    pub root_keys: Vec<String>,
}

impl Zones {
    pub fn file(&self, zone: &str) -> &Path {
        &self.files.iter().find(|(n, _)| n == zone).unwrap_or_else(|| panic!("no zone {zone}")).1
    }

    /// Writes every zone under `dir`, signing the signed ones with fresh
    /// ECDSA P-256 keys (algorithm 13) made by ldns-keygen and placing
    /// each child's DS in its parent before the parent is signed.
    pub fn write(dir: &Path, net: &str) -> Zones {
        Zones::write_with(dir, net, &[])
    }

    /// [`Zones::write`], with `extra` zone-file text appended to the named
    /// zones before signing (`(zone name, text)`; `%NET%` is replaced as
    /// in the templates): for tests that need more names, such as the
    /// cold-cache benchmark.
    #[allow(clippy::disallowed_methods)] // signatures are dated from the real clock the servers and resolvers use
    pub fn write_with(dir: &Path, net: &str, extra: &[(&str, String)]) -> Zones {
        let keys = dir.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        // Signatures valid from an hour ago, so a clock a little behind
        // (or the resolver's own rounding) does not make them "not yet valid".
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let inception = (now - 3600).to_string();
        let mut ds_for: std::collections::HashMap<&'static str, String> = Default::default();
        let mut files = Vec::new();
        let mut trust_anchor = String::new();
        let mut root_keys = Vec::new();
        for def in defs() {
            let mut text = def.text.replace("%NET%", net);
            match def.name {
                "dest.example." => text += &big_txt("big"),
                "good.sec." => text += &big_txt("big"),
                _ => {}
            }
            for (zone, more) in extra {
                if *zone == def.name {
                    text += &more.replace("%NET%", net);
                }
            }
            // DS records of signed children (RFC 4035 §2.4).
            for (child, ds) in &ds_for {
                if parent_of(child) == def.name {
                    text += ds;
                }
            }
            let file_name = if def.name == "." { "root".to_owned() } else { def.name.trim_end_matches('.').to_owned() };
            let unsigned = dir.join(format!("{file_name}.zone"));
            std::fs::write(&unsigned, &text).unwrap();
            if def.sign == Sign::Unsigned {
                files.push((def.name.to_owned(), unsigned));
                continue;
            }
            let ksk = keygen(&keys, def.name, true);
            let mut sign_with = vec![ksk.clone()];
            if def.name == "." {
                // The root alone has a KSK/ZSK split, as the real one does.
                sign_with.push(keygen(&keys, def.name, false));
                trust_anchor = read_ds(&keys, &ksk);
                root_keys = sign_with.clone();
            }
            let signed = dir.join(format!("{file_name}.signed"));
            let mut cmd = Command::new("ldns-signzone");
            match def.sign {
                Sign::Nsec3 => {
                    cmd.args(["-n", "-t", "0"]);
                }
                Sign::Nsec3OptOut => {
                    cmd.args(["-n", "-t", "0", "-p"]);
                }
                _ => {}
            }
            if def.sign == Sign::Expired {
                cmd.args(["-e", "20200101000000", "-i", "20190101000000"]);
            } else {
                cmd.args(["-i", &inception]);
            }
            cmd.args(["-o", def.name]).arg("-f").arg(&signed).arg(&unsigned);
            cmd.args(sign_with.iter().map(|k| keys.join(k)));
            run(&mut cmd);
            // The DS the parent publishes: a different key's for the bogus
            // zone, so no DNSKEY matches it (RFC 4035 §5.2: bogus).
            let ds = if def.name == "bogus-ds.sec." {
                let other = keygen(&keys, def.name, true);
                read_ds(&keys, &other)
            } else {
                read_ds(&keys, &ksk)
            };
            ds_for.insert(def.name, ds);
            files.push((def.name.to_owned(), signed));
        }
        Zones { files, trust_anchor, root_keys }
    }
}

fn parent_of(name: &str) -> &str {
    match name.split_once('.') {
        Some((_, "")) | None => ".",
        Some((_, rest)) => rest,
    }
}

/// Makes a key with ldns-keygen in `dir`; returns its base name.
pub(super) fn keygen(dir: &Path, zone: &str, ksk: bool) -> String {
    let mut cmd = Command::new("ldns-keygen");
    cmd.current_dir(dir).args(["-a", "ECDSAP256SHA256", "-r", "/dev/urandom"]);
    if ksk {
        cmd.arg("-k");
    }
    let out = run(cmd.arg(zone));
    out.trim().to_owned()
}

/// The DS (SHA-256, RFC 4509) of a key, one zone-file line.
fn read_ds(dir: &Path, key: &str) -> String {
    let out = run(Command::new("ldns-key2ds").current_dir(dir).args(["-n", "-2"]).arg(format!("{key}.key")));
    let line = out.trim().to_owned();
    assert!(line.contains("DS"), "ldns-key2ds gave no DS: {line}");
    line + "\n"
}

pub(super) fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {:?} ({e}): the lab needs ldnsutils (scripts/testlab.sh installs it)", cmd.get_program())
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
