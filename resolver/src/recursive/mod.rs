//! Iterative resolution from the root hints (RFC 1034 §5.3.3).
