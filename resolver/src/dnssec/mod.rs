//! DNSSEC validation (RFC 4033–4035).
