//! Envelope, manifest and trust-root parsing on arbitrary bytes: no panic, bounded work.
#![no_main]
use ferry_manifests::root::TrustRoot;
use ferry_manifests::{Envelope, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::parse(data) {
        let _ = Manifest::parse_unverified(&env);
        let _ = env.unverified_payload();
    }
    let _ = TrustRoot::verify_initial(data);
});
