//! The admin surface with the real binary over real sockets: tokens and
//! roles on every gRPC write, the refusal to expose an unauthenticated
//! admin API off loopback, `POST /reload` against cross-site form posts,
//! the audit log (`meshdns audit tail|search`) and secrets kept out of
//! `config check` and the logs.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const READ_SECRET: &str = "read-secret-0123456789";
const WRITE_SECRET: &str = "write-secret-0123456789";
const TSIG_SECRET: &str = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=";

fn tsig_key() -> String {
    format!("hmac-sha256:ddns-key:{TSIG_SECRET}")
}

/// A node with a read token `ci`, a write token `ops` and a TSIG key.
fn tokened() -> Server {
    Server::builder()
        .env("MESHDNS_GRPC_READ_TOKENS", &format!("ci:{READ_SECRET}"))
        .env("MESHDNS_GRPC_WRITE_TOKENS", &format!("ops:{WRITE_SECRET}"))
        .env("MESHDNS_UPDATE_TSIG_KEYS", &tsig_key())
        .start()
}

fn output(out: std::process::Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `meshdns zone ARGS --endpoint NODE [--token TOKEN]`, with no token in
/// the environment.
fn zone(s: &Server, token: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("zone").args(args).args(["--endpoint", &s.grpc.to_string()]).env_remove("MESHDNS_GRPC_TOKEN");
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    output(cmd.output().unwrap())
}

fn audit(args: &[&str], data_dir: &Path) -> (bool, String, String) {
    output(Command::new(BIN).arg("audit").args(args).arg("--data-dir").arg(data_dir).output().unwrap())
}

/// `audit search ... --output json`, parsed.
fn search(s: &Server, filters: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["search", "--output", "json"];
    args.extend_from_slice(filters);
    let (_, out, _) = audit(&args, &s.data_dir);
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn curl_reload(s: &Server, headers: &[&str]) -> u16 {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(format!("http://{}/reload", s.http)).output().expect("curl is needed (scripts/test.sh)");
    String::from_utf8_lossy(&out.stdout).parse().unwrap()
}

/// What a browser sends for a cross-site `<form method=post>`.
const FORM: [&str; 2] = ["Content-Type: application/x-www-form-urlencoded", "Origin: http://evil.example"];

#[test]
fn every_write_rpc_is_refused_without_a_token_and_with_a_read_token() {
    let s = tokened();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("example.net.zone");
    std::fs::write(&file, "$ORIGIN example.net.\n@ 3600 SOA ns1 hostmaster 1 3600 600 86400 60\n@ 3600 NS ns1\nns1 A 192.0.2.53\nimp A 192.0.2.9\n").unwrap();
    let file = file.to_str().unwrap();
    let read = READ_SECRET;
    let write = WRITE_SECRET;
    // Zones.Create, Set, Remove, Import, Delete: every write RPC there is.
    let writes: [&[&str]; 5] = [
        &["create", "example.net"],
        &["set", "example.net", "www", "A", "300", "192.0.2.1"],
        &["remove", "example.net", "www", "A"],
        &["import", file, "--zone", "example.net"],
        &["delete", "example.net"],
    ];
    for args in writes {
        let (ok, _, err) = zone(&s, None, args);
        assert!(!ok && err.contains("requires a bearer token"), "{args:?} without a token: {err}");
        let (ok, _, err) = zone(&s, Some("not-a-token-0123456789"), args);
        assert!(!ok && err.contains("wrong bearer token"), "{args:?} with a wrong token: {err}");
        let (ok, _, err) = zone(&s, Some(read), args);
        assert!(!ok && err.contains("read-only"), "{args:?} with a read token: {err}");
        let (ok, out, err) = zone(&s, Some(write), args);
        assert!(ok, "{args:?} with a write token: {err}");
        assert!(out.contains("written") || out.contains("deleted"), "{args:?}: {out}");
        if args[0] == "create" {
            // Reads work with either token, and with none not at all.
            for (args, what) in [
                (&["list"][..], "example.net"),
                (&["export", "example.net"][..], "SOA"),
                (&["diff", file, "--zone", "example.net"][..], "imp"),
            ] {
                let (_, out, err) = zone(&s, Some(read), args);
                assert!(out.contains(what), "{args:?} with a read token: {out}{err}");
                let (ok, _, err) = zone(&s, None, args);
                assert!(!ok && err.contains("bearer token"), "{args:?} without a token: {err}");
            }
            let (ok, out, err) = cluster_cli(&s.grpc.to_string(), &["status", "--output", "json", "--token", read]);
            assert!(ok && out.contains("node_id"), "{err}");
        }
    }
    // Each refusal by role, and each accepted write, is in the audit log.
    let denied = search(&s, &["--actor", "ci"]);
    assert_eq!(denied.len(), 5, "{denied:?}");
    assert!(denied.iter().all(|e| e["result"] == "denied"));
    let done = search(&s, &["--actor", "token:ops", "--action", "zone"]);
    let actions: Vec<&str> = done.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["zone.create", "zone.set", "zone.remove", "zone.import", "zone.delete"]);
    assert!(done.iter().all(|e| e["result"] == "ok" && e["zone"] == "example.net"), "{done:?}");
}

#[test]
fn an_admin_surface_off_loopback_without_a_token_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |grpc: &str, http: &str, token: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .args(["--listen", &format!("127.0.0.1:{}", free_port()), "--http", http, "--grpc", grpc])
            .args(["--gossip", &format!("127.0.0.1:{}", free_gossip_port())])
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("MESHDNS_GRPC_TOKEN");
        if let Some(t) = token {
            cmd.env("MESHDNS_GRPC_WRITE_TOKENS", format!("ops:{t}"));
        }
        cmd
    };
    let loopback = || format!("127.0.0.1:{}", free_port());
    let any = || format!("0.0.0.0:{}", free_port());
    let out = serve(&any(), &loopback(), None).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("grpc.listen") && err.contains("grpc.write_tokens"), "{err}");
    let out = serve(&loopback(), &any(), None).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("server.http") && err.contains("grpc.write_tokens"), "{err}");
    // A read token alone guards the API, but not POST /reload.
    let out = serve(&loopback(), &any(), None).env("MESHDNS_GRPC_READ_TOKENS", format!("ci:{READ_SECRET}")).output();
    assert_eq!(out.unwrap().status.code(), Some(2));

    // With a write token both may listen on every address.
    let http_port = free_port();
    let mut child =
        serve(&any(), &format!("0.0.0.0:{http_port}"), Some(WRITE_SECRET)).stderr(Stdio::null()).spawn().unwrap();
    let http = format!("127.0.0.1:{http_port}").parse().unwrap();
    wait_for("the node on 0.0.0.0", Duration::from_secs(30), || {
        assert!(child.try_wait().unwrap().is_none(), "meshdns exited");
        http_request(http, "GET", "/readyz").filter(|(c, _)| *c == 200)
    });
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_cross_site_form_post_cannot_reload() {
    // No tokens (loopback): the admin header is the proof.
    let s = Server::builder().start();
    assert_eq!(curl_reload(&s, &FORM), 403);
    assert_eq!(curl_reload(&s, &[]), 403);
    assert_eq!(curl_reload(&s, &["X-Meshdns-Admin: 1"]), 200);
    let out = Command::new(BIN).args(["zone", "reload", "--http", &s.http.to_string()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = search(&s, &["--action", "reload"]);
    let results: Vec<&str> = r.iter().map(|e| e["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["denied", "denied", "ok", "ok"], "{r:?}");
    assert!(r.iter().all(|e| e["peer"].as_str().unwrap().starts_with("127.0.0.1:")));

    // With tokens: only a write token reloads; the header alone does not.
    let s = tokened();
    let bearer = |t: &str| format!("Authorization: Bearer {t}");
    assert_eq!(curl_reload(&s, &FORM), 401);
    assert_eq!(curl_reload(&s, &["X-Meshdns-Admin: 1"]), 401);
    assert_eq!(curl_reload(&s, &[&bearer(READ_SECRET)]), 403);
    assert_eq!(curl_reload(&s, &[&bearer(WRITE_SECRET)]), 200);
    let reload = |token: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.args(["zone", "reload", "--http", &s.http.to_string()]).env_remove("MESHDNS_GRPC_TOKEN");
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        output(cmd.output().unwrap())
    };
    let (ok, _, err) = reload(None);
    assert!(!ok && err.contains("write token"), "{err}");
    let (ok, _, err) = reload(Some(WRITE_SECRET));
    assert!(ok, "{err}");
    let ok = search(&s, &["--action", "reload", "--actor", "ops"]);
    assert_eq!(ok.len(), 2, "{ok:?}");
}

fn nsupdate(s: &Server, script: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cmds");
    std::fs::write(&f, format!("server 127.0.0.1 {}\nzone example.net\n{script}send\n", s.dns.port())).unwrap();
    let out = Command::new("nsupdate").args(["-y", &tsig_key()]).arg(&f).output().expect("nsupdate is needed");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn grpc_writes_updates_and_reloads_are_audited_and_found() {
    let s = tokened();
    // `tail --follow` sees entries as they are written.
    let mut follow = Command::new(BIN)
        .args(["audit", "tail", "-n", "0", "--follow", "--output", "json", "--data-dir"])
        .arg(&s.data_dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });

    for args in [&["create", "example.net"][..], &["set", "example.net", "ns1", "A", "3600", "192.0.2.53"]] {
        let (ok, _, err) = zone(&s, Some(WRITE_SECRET), args);
        assert!(ok, "{err}");
    }
    let out = nsupdate(&s, "update add www.example.net. 300 A 192.0.2.80\n");
    assert!(!out.contains("failed"), "{out}");
    s.signal(1);
    wait_for("the SIGHUP reload's audit entry", Duration::from_secs(20), || {
        search(&s, &["--actor", "signal:SIGHUP"]).pop()
    });

    let set = search(&s, &["--zone", "EXAMPLE.NET.", "--action", "zone.set", "--since", "1h"]);
    assert_eq!(set.len(), 1, "{set:?}");
    assert_eq!(set[0]["actor"], "token:ops");
    assert!(set[0]["detail"].as_str().unwrap().contains("ns1 A"), "{set:?}");
    assert!(set[0]["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    let update = search(&s, &["--action", "dns.update", "--actor", "ddns-key"]);
    assert_eq!(update.len(), 1, "{update:?}");
    assert_eq!((update[0]["zone"].as_str(), update[0]["result"].as_str()), (Some("example.net."), Some("ok")));
    // An UPDATE signed with a key the node does not have is denied, and audited.
    let bad = Command::new("nsupdate")
        .args(["-y", "hmac-sha256:other-key:b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA=="])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            let script = format!(
                "server 127.0.0.1 {}\nzone example.net\nupdate add x.example.net. 60 A 192.0.2.1\nsend\n",
                s.dns.port()
            );
            c.stdin.take().unwrap().write_all(script.as_bytes())?;
            c.wait()
        })
        .unwrap();
    assert!(!bad.success());
    let denied = search(&s, &["--action", "dns.update", "--actor", "other-key"]);
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["result"], "denied");

    // Nothing before the future, nothing for another zone: exit status 1.
    let (ok, out, _) = audit(&["search", "--since", "2999-01-01T00:00:00Z"], &s.data_dir);
    assert!(!ok && out.is_empty());
    let (ok, _, err) = audit(&["search", "--since", "yesterday-ish"], &s.data_dir);
    assert!(!ok && err.contains("--since"), "{err}");
    // The human format names who, what and where.
    let (ok, out, _) = audit(&["tail", "-n", "3"], &s.data_dir);
    assert!(ok && out.lines().count() == 3, "{out}");
    assert!(out.contains("tsig:ddns-key") && out.contains("signal:SIGHUP"), "{out}");

    let mut seen = Vec::new();
    while seen.len() < 4 {
        let line = rx.recv_timeout(Duration::from_secs(20)).expect("tail --follow printed nothing");
        let e: serde_json::Value = serde_json::from_str(&line).unwrap();
        seen.push(e["action"].as_str().unwrap().to_owned());
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(seen, ["zone.create", "zone.set", "dns.update", "reload"]);
}

#[test]
fn the_audit_log_rotates_and_keeps_n_files() {
    let s = Server::builder().env("MESHDNS_AUDIT_MAX_BYTES", "4096").env("MESHDNS_AUDIT_KEEP", "2").start();
    for _ in 0..80 {
        let (code, _) = reload_with_header(s.http);
        assert_eq!(code, 200);
    }
    let file = s.data_dir.join("audit.log");
    for f in [file.clone(), s.data_dir.join("audit.log.1"), s.data_dir.join("audit.log.2")] {
        let len = std::fs::metadata(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display())).len();
        assert!(len > 0 && len <= 4096, "{}: {len} bytes", f.display());
    }
    assert!(!s.data_dir.join("audit.log.3").exists(), "only two rotated files are kept");
    let all = search(&s, &["--action", "reload"]);
    assert!(all.len() < 80 && all.len() > 20, "{}", all.len());
    assert!(all.windows(2).all(|w| w[0]["unix_ms"].as_u64() <= w[1]["unix_ms"].as_u64()), "oldest first");
    let (ok, out, _) = audit(&["tail", "-n", "5", "--output", "json"], &s.data_dir);
    assert!(ok && out.lines().count() == 5, "{out}");
}

fn reload_with_header(http: std::net::SocketAddr) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(http).unwrap();
    write!(s, "POST /reload HTTP/1.0\r\nHost: x\r\nX-Meshdns-Admin: 1\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    (resp.split_whitespace().nth(1).unwrap().parse().unwrap(), resp)
}

#[test]
fn secrets_stay_out_of_config_check_and_the_logs() {
    let token = "legacy-token-secret-0123456789";
    let envs = [
        ("MESHDNS_GRPC_TOKEN", token.to_owned()),
        ("MESHDNS_GRPC_READ_TOKENS", format!("ci:{READ_SECRET}")),
        ("MESHDNS_GRPC_WRITE_TOKENS", format!("ops:{WRITE_SECRET}")),
        ("MESHDNS_UPDATE_TSIG_KEYS", tsig_key()),
    ];
    let secrets = [token, READ_SECRET, WRITE_SECRET, TSIG_SECRET];
    let (ok, out, err) = output(Command::new(BIN).args(["config", "check"]).envs(envs.clone()).output().unwrap());
    assert!(ok, "{err}");
    assert!(out.contains("configuration ok") && out.contains("[redacted]") && out.contains("\"ops\""), "{out}");
    for secret in secrets {
        assert!(!out.contains(secret) && !err.contains(secret), "config check printed {secret}:\n{out}{err}");
    }
    // A bad token's error does not quote it.
    let short = "short-secret";
    let (ok, _, err) = output(
        Command::new(BIN)
            .args(["config", "check"])
            .env("MESHDNS_GRPC_WRITE_TOKENS", format!("ops:{short}"))
            .output()
            .unwrap(),
    );
    assert!(!ok && err.contains("grpc.write_tokens") && !err.contains(short), "{err}");
    let (ok, _, err) = output(
        Command::new(BIN).args(["config", "check"]).env("MESHDNS_UPDATE_TSIG_KEYS", TSIG_SECRET).output().unwrap(),
    );
    assert!(!ok && err.contains("update.tsig_keys") && !err.contains(TSIG_SECRET), "{err}");

    // A node at debug level, written to and reloaded, logs none of them.
    let mut b = Server::builder();
    for (k, v) in &envs {
        b = b.env(k, v);
    }
    let s = b.start();
    let (ok, _, err) = zone(&s, Some(token), &["create", "example.org"]);
    assert!(ok, "{err}");
    let (ok, _, err) = zone(&s, Some(READ_SECRET), &["create", "example.com"]);
    assert!(!ok, "{err}");
    let log = s.log_text();
    assert!(log.contains("serving"), "{log}");
    for secret in secrets {
        assert!(!log.contains(secret), "the log holds {secret}:\n{log}");
        let audit_log = std::fs::read_to_string(s.data_dir.join("audit.log")).unwrap();
        assert!(!audit_log.contains(secret), "{audit_log}");
    }
}

#[test]
fn client_variables_do_not_stop_the_server() {
    // A shell that exported the client's endpoint can still run a node.
    let s = Server::builder().env("MESHDNS_ENDPOINT", "127.0.0.1:1").start();
    assert_eq!(s.http_get("/healthz").map(|(c, _)| c), Some(200));
    let out = Command::new(BIN).args(["config", "check"]).env("MESHDNS_ENDPOINT", "127.0.0.1:1").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Other unknown MESHDNS_ variables are still typos.
    let out = Command::new(BIN).args(["config", "check"]).env("MESHDNS_ENDPOIN", "127.0.0.1:1").output().unwrap();
    assert!(!out.status.success());
}
