//! Iteration tests on a scripted network (see [`fake`]).

mod aggressive;
mod dnssec;
mod fake;
mod prop;
mod scenarios;
mod signer;
mod world;

/// The driver shares a recursor across tasks and moves resolutions
/// between them.
#[test]
fn recursor_is_send_sync_and_resolution_is_send() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<super::Recursor>();
    send::<super::Resolution>();
}
