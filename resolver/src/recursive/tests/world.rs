//! The standard test world: a root, com/net/org, and a few zones.

use hickory_proto::rr::Record;

use super::fake::{FakeNet, a, cname, dname, ns, soa};

pub(crate) const ROOT: &str = "10.0.0.1";
pub(crate) const COM: &str = "10.0.1.1";
pub(crate) const EX1: &str = "10.0.2.1";
pub(crate) const EX2: &str = "10.0.2.2";
pub(crate) const NET: &str = "10.0.3.1";
pub(crate) const ORG: &str = "10.0.4.1";
pub(crate) const EXNET: &str = "10.0.5.1";
pub(crate) const OTHER: &str = "10.0.6.1";

pub(crate) const ROOTS: &[(&str, &str)] = &[("a.root.", ROOT)];

pub(crate) fn world() -> FakeNet {
    let mut net = FakeNet::default();
    net.zone(
        ROOT,
        ".",
        vec![
            soa(".", 86400, 86400),
            ns(".", "a.root."),
            a("a.root.", ROOT),
            ns("com.", "ns.com."),
            a("ns.com.", COM),
            ns("net.", "ns.net."),
            a("ns.net.", NET),
            ns("org.", "ns.org."),
            a("ns.org.", ORG),
        ],
    );
    net.zone(
        COM,
        "com.",
        vec![
            soa("com.", 900, 900),
            ns("com.", "ns.com."),
            a("ns.com.", COM),
            ns("example.com.", "ns1.example.com."),
            ns("example.com.", "ns2.example.com."),
            a("ns1.example.com.", EX1),
            a("ns2.example.com.", EX2),
            ns("glueless.com.", "ns.example.net."),
        ],
    );
    let example: Vec<Record> = vec![
        soa("example.com.", 3600, 60),
        ns("example.com.", "ns1.example.com."),
        ns("example.com.", "ns2.example.com."),
        a("ns1.example.com.", EX1),
        a("ns2.example.com.", EX2),
        a("www.example.com.", "192.0.2.1"),
        a("deep.a.b.c.example.com.", "192.0.2.2"),
        cname("alias.example.com.", "www.other.org."),
        cname("inzone.example.com.", "www.example.com."),
        cname("loop1.example.com.", "loop2.example.com."),
        cname("loop2.example.com.", "loop1.example.com."),
        dname("old.example.com.", "new.example.net."),
    ];
    net.zone(EX1, "example.com.", example.clone());
    net.zone(EX2, "example.com.", example);
    net.zone(
        NET,
        "net.",
        vec![soa("net.", 900, 900), ns("example.net.", "ns.example.net."), a("ns.example.net.", EXNET)],
    );
    net.zone(
        EXNET,
        "example.net.",
        vec![
            soa("example.net.", 3600, 300),
            ns("example.net.", "ns.example.net."),
            a("ns.example.net.", EXNET),
            a("host.new.example.net.", "192.0.2.7"),
        ],
    );
    net.zone(
        EXNET,
        "glueless.com.",
        vec![
            soa("glueless.com.", 3600, 300),
            ns("glueless.com.", "ns.example.net."),
            a("www.glueless.com.", "192.0.2.5"),
        ],
    );
    net.zone(ORG, "org.", vec![soa("org.", 900, 900), ns("other.org.", "ns.other.org."), a("ns.other.org.", OTHER)]);
    net.zone(
        OTHER,
        "other.org.",
        vec![
            soa("other.org.", 3600, 300),
            ns("other.org.", "ns.other.org."),
            a("ns.other.org.", OTHER),
            a("www.other.org.", "192.0.2.9"),
        ],
    );
    net
}
