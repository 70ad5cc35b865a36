//! Real QUIC endpoints on loopback with certificates from a real cluster CA.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use meshdns_transport::ca;
use meshdns_transport::net::{AnswerLimits, Endpoint, Limits, NetError, read_frame, write_frame};
use meshdns_transport::tls::Identity;

const ANY: AnswerLimits = AnswerLimits { max_frames: 100, max_bytes: 1 << 20 };

fn endpoint(dir: &std::path::Path, id: &str) -> Endpoint {
    let identity = Identity::load(dir, id).unwrap();
    let limits = Limits { max_frame: 1024, read_timeout: Duration::from_millis(500) };
    Endpoint::bind("127.0.0.1:0".parse().unwrap(), identity, limits).unwrap()
}

/// `a` answers one request by echoing it reversed.
fn serve_echo(a: Endpoint) -> tokio::task::JoinHandle<Result<String, NetError>> {
    tokio::spawn(async move {
        let conn = a.accept().await.unwrap()?;
        let who = a.identify(&conn).await?;
        let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| NetError::Stream(e.to_string()))?;
        let req = read_frame(&mut recv, a.limits()).await?.unwrap_or_default();
        let mut answer = req.clone();
        answer.reverse();
        write_frame(&mut send, &answer).await?;
        send.finish().map_err(|e| NetError::Stream(e.to_string()))?;
        // Keep the connection until the client is done with it.
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
        Ok(who)
    })
}

fn ca_with(ids: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ca::init(dir.path()).unwrap();
    for id in ids {
        ca::issue(dir.path(), id).unwrap();
    }
    dir
}

#[tokio::test]
async fn nodes_of_one_ca_talk_and_know_who_is_who() {
    let dir = ca_with(&["a", "b"]);
    let a = endpoint(dir.path(), "a");
    let b = endpoint(dir.path(), "b");
    let addr = a.local_addr().unwrap();
    let server = serve_echo(a);
    let conn = b.connect(addr, "a").await.unwrap();
    let answer = b.request(&conn, b"hello", ANY).await.unwrap();
    assert_eq!(answer, vec![b"olleh".to_vec()]);
    conn.close(0u32.into(), b"done");
    assert_eq!(server.await.unwrap().unwrap(), "b", "the server identified its client");
}

#[tokio::test]
async fn a_server_that_is_not_the_node_asked_for_is_refused() {
    let dir = ca_with(&["a", "b"]);
    let a = endpoint(dir.path(), "a");
    let b = endpoint(dir.path(), "b");
    let addr = a.local_addr().unwrap();
    let _server = serve_echo(a);
    let err = b.connect(addr, "c").await.unwrap_err();
    assert!(matches!(err, NetError::Connect(..)), "{err}");
}

#[tokio::test]
async fn a_node_with_a_certificate_from_another_ca_is_refused() {
    let ours = ca_with(&["a"]);
    let theirs = ca_with(&["b"]);
    // b trusts our CA (so it would accept a) but holds a certificate of theirs.
    std::fs::copy(ours.path().join("ca.pem"), theirs.path().join("ca.pem")).unwrap();
    let a = endpoint(ours.path(), "a");
    let b = endpoint(theirs.path(), "b");
    let addr = a.local_addr().unwrap();
    let server = serve_echo(a);
    let refused = match b.connect(addr, "a").await {
        Err(_) => true,
        Ok(conn) => b.request(&conn, b"x", ANY).await.is_err(),
    };
    assert!(refused, "a client certificate from another CA must not get an answer");
    assert!(server.await.unwrap().is_err());
}

#[tokio::test]
async fn a_client_claiming_another_id_is_caught() {
    let dir = ca_with(&["a", "b"]);
    // "mallory" presents b's certificate and key but claims its own name.
    std::fs::copy(dir.path().join("b.pem"), dir.path().join("mallory.pem")).unwrap();
    std::fs::copy(dir.path().join("b.key"), dir.path().join("mallory.key")).unwrap();
    let a = endpoint(dir.path(), "a");
    let m = endpoint(dir.path(), "mallory");
    let addr = a.local_addr().unwrap();
    let server = serve_echo(a);
    let _conn = m.connect(addr, "a").await.unwrap();
    let err = server.await.unwrap().unwrap_err();
    assert!(matches!(err, NetError::WrongIdentity(ref id) if id == "mallory"), "{err}");
}

#[tokio::test]
async fn oversized_frames_and_stalls_are_cut_off() {
    let dir = ca_with(&["a", "b"]);
    let a = endpoint(dir.path(), "a");
    let b = endpoint(dir.path(), "b");
    let addr = a.local_addr().unwrap();
    let a2 = a.clone();
    let server = tokio::spawn(async move {
        let conn = a2.accept().await.unwrap().unwrap();
        a2.identify(&conn).await.unwrap();
        let (_s1, mut r1) = conn.accept_bi().await.unwrap();
        let big = read_frame(&mut r1, a2.limits()).await;
        let (_s2, mut r2) = conn.accept_bi().await.unwrap();
        let stalled = read_frame(&mut r2, a2.limits()).await;
        (big, stalled)
    });
    let conn = b.connect(addr, "a").await.unwrap();
    let (mut s1, _r1) = conn.open_bi().await.unwrap();
    // Claims 1 GiB: refused from the length alone, nothing allocated.
    s1.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
    let (mut s2, _r2) = conn.open_bi().await.unwrap();
    // Half a length prefix, then silence.
    s2.write_all(&[0, 0]).await.unwrap();
    let (big, stalled) = server.await.unwrap();
    assert!(matches!(big, Err(NetError::TooLarge(1_073_741_824, 1024))), "{big:?}");
    assert!(matches!(stalled, Err(NetError::Timeout(_))), "{stalled:?}");
}

#[test]
fn the_ca_refuses_to_overwrite_itself_and_explains_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let err = ca::issue(dir.path(), "a").unwrap_err().to_string();
    assert!(err.contains("run `meshdns cluster ca init"), "{err}");
    ca::init(dir.path()).unwrap();
    let err = ca::init(dir.path()).unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");
    let err = ca::issue(dir.path(), "bad id").unwrap_err().to_string();
    assert!(err.contains("cannot be put in a certificate"), "{err}");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.path().join("ca.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the CA key is private");
}

/// An answer is held to its bounds while it streams: a peer that never
/// stops sending frames fails the request once the bound is passed,
/// instead of filling memory until the stream ends (it never would).
#[tokio::test]
async fn an_endless_answer_is_cut_off_at_its_bounds_while_it_streams() {
    let dir = ca_with(&["a", "b"]);
    let a = endpoint(dir.path(), "a");
    let b = endpoint(dir.path(), "b");
    let addr = a.local_addr().unwrap();
    tokio::spawn(async move {
        let conn = a.accept().await.unwrap().unwrap();
        a.identify(&conn).await.unwrap();
        let (mut send, mut recv) = conn.accept_bi().await.unwrap();
        let _ = read_frame(&mut recv, a.limits()).await;
        // Frames forever, until the client stops the stream.
        while write_frame(&mut send, &[7u8; 512]).await.is_ok() {}
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
    });
    let conn = b.connect(addr, "a").await.unwrap();
    let frames = AnswerLimits { max_frames: 10, max_bytes: 1 << 20 };
    let err = tokio::time::timeout(Duration::from_secs(20), b.request(&conn, b"pull", frames))
        .await
        .expect("the request fails at the bound, not never")
        .unwrap_err();
    assert!(matches!(err, NetError::AnswerTooLarge { what: "frames", limit: 10 }), "{err}");
}
