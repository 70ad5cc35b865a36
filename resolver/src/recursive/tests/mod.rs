//! Iteration tests on a scripted network (see [`fake`]).

mod dnssec;
mod fake;
mod prop;
mod scenarios;
mod signer;
mod world;
