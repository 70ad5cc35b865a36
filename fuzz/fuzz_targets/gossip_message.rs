//! Any bytes as a gossip datagram: the decoder never panics, never
//! allocates past its decompression budget, and whatever it accepts
//! encodes again without panicking.
#![no_main]

use chitchat::ChitchatEnvelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = ChitchatEnvelope::decode(data) {
        let bytes = envelope.encode();
        let _ = ChitchatEnvelope::decode(&bytes);
    }
});
