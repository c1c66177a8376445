//! Fixtures for the policy tests.

use ferry_manifests::wire::ReleaseView;

/// A published release of `item` `version` (category `feature`, layout `symlink`), nothing
/// else set: tests change what they look at.
pub fn release(item: &str, version: &str) -> ReleaseView {
    ReleaseView {
        item: item.into(),
        version: version.parse().unwrap(),
        category: "feature".into(),
        released_at: String::new(),
        expires_at: String::new(),
        notes: String::new(),
        release_url: None,
        layout: "symlink".into(),
        artifact_name: String::new(),
        artifact_size: 0,
        artifact_sha256: String::new(),
        signed_by: vec![],
        published_at: String::new(),
        mirrors: vec![],
        withdrawn_at: None,
        withdrawn_reason: None,
        bundle: None,
        metered_allowed: false,
    }
}
