//! The whole `/metrics` page of a running node, parsed strictly as the
//! Prometheus text format (0.0.4): every sample under a declared family of
//! the right type, every label value properly escaped, even for a zone
//! whose name holds `"` and `\` and a zone file whose name holds a line feed.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::Server;

#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses `text` strictly; panics naming the line on any violation.
fn parse(text: &str) -> (HashMap<String, String>, Vec<Sample>) {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let at = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(valid_name(name), "{}", at("bad metric name"));
            let mut chars = help.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    assert!(matches!(chars.next(), Some('\\' | 'n')), "{}", at("bad escape in HELP"));
                }
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("{}", at("TYPE without a type")));
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{}", at("unknown type"));
            assert!(types.insert(name.to_owned(), kind.to_owned()).is_none(), "{}", at("family declared twice"));
            if kind == "counter" {
                assert!(name.ends_with("_total"), "{}", at("a counter's name must end in _total"));
            }
            current = Some(name.to_owned());
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{}", at("stray line"));
        let sample = parse_sample(line).unwrap_or_else(|e| panic!("{}", at(e)));
        let family = current.as_deref().unwrap_or_else(|| panic!("{}", at("sample before any TYPE")));
        let kind = &types[family];
        let ok = if kind == "histogram" {
            ["_bucket", "_sum", "_count"].iter().any(|s| sample.name == format!("{family}{s}"))
        } else {
            sample.name == family
        };
        assert!(ok, "{}", at(&format!("sample not of its family {family} ({kind})")));
        samples.push(sample);
    }
    (types, samples)
}

fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

fn parse_sample(line: &str) -> Result<Sample, &'static str> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err("bad sample name");
    }
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find("=\"").ok_or("label without =\"")?;
            let key = &rest[..eq];
            if !valid_name(key) {
                return Err("bad label name");
            }
            let mut value = String::new();
            let mut chars = rest[eq + 2..].char_indices();
            let end = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        _ => return Err("bad escape in label value"),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.push((key.to_owned(), value));
            rest = &rest[eq + 2 + end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| "value is not a number")?,
    };
    Ok(Sample { name: name.to_owned(), labels, value })
}

#[test]
fn the_whole_metrics_page_parses_with_types_and_escaped_zone_names() {
    let zone = "$ORIGIN we\\\"ird\\\\zone.test.\n$TTL 300\n@ SOA ns h 1 3600 600 86400 30\n@ NS ns\nns A 192.0.2.1\n";
    let dir = common::zone_dir(&[("weird.zone", zone), ("broken\nname.zone", "this is not a zone\n")]);
    let s = Server::with_zones(dir.path());
    // Some traffic, so the per-query families have samples.
    s.query("outside.test.", hickory_proto::rr::RecordType::A);
    let (code, body) = s.http_get("/metrics").expect("/metrics unreachable");
    assert_eq!(code, 200);
    let (types, samples) = parse(&body);

    // The zone label round-trips to the zone's presentation name.
    let serial = samples
        .iter()
        .find(|x| x.name == "meshdns_zone_serial" && x.labels.iter().any(|(_, v)| v.contains("ird")))
        .unwrap_or_else(|| panic!("no serial for the weird zone:\n{body}"));
    assert_eq!(serial.labels, [("zone".to_owned(), "we\\\"ird\\\\zone.test.".to_owned())]);
    assert_eq!(serial.value, 1.0);
    // The file label keeps its line feed (escaped on the wire, restored here).
    assert!(
        samples.iter().any(|x| x.name == "meshdns_zone_load_errors_total"
            && x.labels.iter().any(|(k, v)| k == "file" && v.contains("broken\nname"))),
        "no load error for the broken file:\n{body}"
    );

    // Types are what the values are.
    for (name, kind) in [
        ("meshdns_queries_total", "counter"),
        ("meshdns_query_duration_seconds", "histogram"),
        ("meshdns_zone_serial", "gauge"),
        ("meshdns_mesh_members", "gauge"),
        ("meshdns_mesh_peers_heard_within_seconds", "gauge"),
        ("meshdns_rrl_responses_total", "counter"),
        ("meshdns_acl_refused_total", "counter"),
    ] {
        assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name}");
    }
    // Every histogram: cumulative buckets ending in +Inf, which equals _count.
    for (family, _) in types.iter().filter(|(_, k)| *k == "histogram") {
        let buckets: Vec<&Sample> = samples.iter().filter(|x| x.name == format!("{family}_bucket")).collect();
        assert!(buckets.windows(2).all(|w| w[0].value <= w[1].value), "{family} buckets not cumulative");
        let last = buckets.last().unwrap_or_else(|| panic!("{family} has no buckets"));
        assert_eq!(last.labels, [("le".to_owned(), "+Inf".to_owned())]);
        let count = samples.iter().find(|x| x.name == format!("{family}_count")).unwrap();
        assert_eq!(last.value, count.value, "{family}: +Inf bucket vs _count");
    }
}
