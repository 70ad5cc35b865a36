//! Who may use the admin surface: bearer tokens, each read-only or
//! read-write, for the gRPC admin API and the HTTP listener's `POST`
//! endpoints.
//!
//! Every token has a name (used in the audit log instead of the secret).
//! A presented token is compared with every configured one, SHA-256 digest
//! against digest without an early exit, so the time taken reveals neither
//! which token nor how much of a guess was right.

use std::net::SocketAddr;

use super::secret::Secret;

/// What a caller may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Read calls only (`List`, `Export`, `Members`, `Status`, ...).
    Read,
    /// Every call.
    Write,
}

/// An authenticated caller, as the audit log names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The token's name, or `anonymous` when the node has no tokens (then
    /// it only listens on loopback).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Where the call came from, when known.
    pub peer: Option<SocketAddr>,
}

impl Caller {
    /// How the audit log names this caller: `token:NAME` or `anonymous`.
    pub fn actor(&self) -> String {
        if self.name == ANONYMOUS { ANONYMOUS.to_owned() } else { format!("token:{}", self.name) }
    }
}

/// The name of callers on a node without tokens.
pub const ANONYMOUS: &str = "anonymous";

/// One configured token.
#[derive(Clone, Debug)]
pub struct Token {
    /// Its name (audit log, error messages).
    pub name: String,
    /// The secret the client sends as `Authorization: Bearer SECRET`.
    pub secret: Secret,
    /// What it allows.
    pub role: Role,
}

/// Why a request is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No `authorization` header, but the node has tokens.
    #[error("this node requires a bearer token: pass --token or MESHDNS_GRPC_TOKEN")]
    Missing,
    /// A token that matches none configured.
    #[error("wrong bearer token")]
    Wrong,
    /// A read-only token on a call that writes.
    #[error("token {0:?} is read-only and this call writes: use a token from grpc.write_tokens (or grpc.token)")]
    ReadOnly(String),
}

/// The configured tokens.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    tokens: Vec<Token>,
}

fn digest(b: &[u8]) -> ring::digest::Digest {
    ring::digest::digest(&ring::digest::SHA256, b)
}

impl Tokens {
    /// The tokens given.
    pub fn new(tokens: Vec<Token>) -> Tokens {
        Tokens { tokens }
    }

    /// Whether no token is configured (then every caller is anonymous and
    /// may write; the node refuses to listen off loopback).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether a write token is configured.
    pub fn has_write(&self) -> bool {
        self.tokens.iter().any(|t| t.role == Role::Write)
    }

    /// Who sent `authorization` (the header's value, `Bearer SECRET`).
    pub fn authenticate(&self, authorization: Option<&[u8]>, peer: Option<SocketAddr>) -> Result<Caller, Denied> {
        if self.tokens.is_empty() {
            return Ok(Caller { name: ANONYMOUS.to_owned(), role: Role::Write, peer });
        }
        let Some(header) = authorization else { return Err(Denied::Missing) };
        let presented = digest(header);
        let mut found: Option<&Token> = None;
        // Every token is compared, each comparison without an early exit.
        for t in &self.tokens {
            let expected = digest(format!("Bearer {}", t.secret.expose()).as_bytes());
            let diff = expected.as_ref().iter().zip(presented.as_ref()).fold(0u8, |acc, (x, y)| acc | (x ^ y));
            if diff == 0 && found.is_none() {
                found = Some(t);
            }
        }
        found.map(|t| Caller { name: t.name.clone(), role: t.role, peer }).ok_or(Denied::Wrong)
    }
}

/// Refuses `caller` unless it may write.
pub fn require_write(caller: &Caller) -> Result<(), Denied> {
    match caller.role {
        Role::Write => Ok(()),
        Role::Read => Err(Denied::ReadOnly(caller.name.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(vec![
            Token { name: "ci".into(), secret: Secret::new("read-secret-0123456789"), role: Role::Read },
            Token { name: "ops".into(), secret: Secret::new("write-secret-0123456789"), role: Role::Write },
        ])
    }

    #[test]
    fn each_token_maps_to_its_name_and_role() {
        let t = tokens();
        let c = t.authenticate(Some(b"Bearer read-secret-0123456789"), None).unwrap();
        assert_eq!((c.name.as_str(), c.role), ("ci", Role::Read));
        assert_eq!(require_write(&c), Err(Denied::ReadOnly("ci".into())));
        let c = t.authenticate(Some(b"Bearer write-secret-0123456789"), None).unwrap();
        assert_eq!((c.actor().as_str(), c.role), ("token:ops", Role::Write));
        assert_eq!(t.authenticate(Some(b"Bearer write-secret-012345678"), None), Err(Denied::Wrong));
        assert_eq!(t.authenticate(None, None), Err(Denied::Missing));
    }

    #[test]
    fn without_tokens_everyone_is_anonymous() {
        let c = Tokens::default().authenticate(None, None).unwrap();
        assert_eq!((c.actor().as_str(), c.role), ("anonymous", Role::Write));
    }
}
