//! The admin surface's guards: tokens and roles ([`auth`]), the audit log
//! ([`audit`]) and the redacting [`secret::Secret`].
//!
//! Who may use what (docs/mesh.md, "Admin API"):
//! - gRPC admin API: with no token configured, anyone who can reach it
//!   (the node then refuses to listen off loopback); with tokens, read
//!   calls need any token and write calls a write token.
//! - HTTP `POST /reload`: a write token as `Authorization: Bearer`, or on
//!   a node without tokens (loopback only) the `X-Meshdns-Admin` header,
//!   which a cross-site form post cannot send.

pub mod audit;
pub mod audit_cli;
pub mod auth;
pub mod dns_update;
pub mod secret;
