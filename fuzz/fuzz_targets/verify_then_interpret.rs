//! Verify-then-interpret: a fixed test key signs whatever the fuzzer produces, so the input
//! reaches the parsing, validation, expiry and admission logic behind the signature check.
#![no_main]
use ferry_agent::policy::{admit, Admission};
use ferry_agent::state::ItemState;
use ferry_manifests::envelope::MANIFEST_PAYLOAD_TYPE;
use ferry_manifests::{Envelope, Manifest, SigningKeyFile, TrustedKeys};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = SigningKeyFile::from_seed([7; 32]);
    let trusted = TrustedKeys::new([key.public()]);
    let env = Envelope::sign(MANIFEST_PAYLOAD_TYPE, data, &[&key]);
    let now = time::OffsetDateTime::now_utc();
    let Ok(verified) = Manifest::verify(&env, &trusted, 1, now) else {
        return;
    };
    // Whatever was signed, what passed validation obeys the manifest's own rules.
    assert!(verified.expires_at > now);
    assert!(verified.validate().is_ok());
    let highest: semver::Version = "1.0.0".parse().unwrap();
    let state = ItemState {
        installed: Some(highest.clone()),
        highest: Some(highest.clone()),
        ..Default::default()
    };
    let version = verified.version.clone();
    let item = verified.item.clone();
    if let Ok(Admission::Install) = admit(&verified, &item, &version, &state, None) {
        assert!(version > highest || verified.allow_downgrade);
        assert!(verified.compatible.is_empty());
    }
});
