//! Forwarding to upstream resolvers.
