//! The signed release index of a static release repository: one per item, at
//! `REPOSITORY/ITEM.index.json`, listing the item's releases and the file name of each signed
//! manifest beside it. The repository is flat (index, manifests and artifacts side by side,
//! every name starting with the item's), so a forge's release assets can hold it as well as
//! a directory on a web server. It is signed with the release key(s) and expires, so a mirror that keeps
//! serving an old index can hold a device back only until that index's expiry; and a device
//! never takes an index older than one it has already seen.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::envelope::{Envelope, VerifyError};
use crate::invalid::{validate_artifact_name, validate_item_name, validate_release_url, Invalid};
use crate::keys::TrustedKeys;
use crate::manifest::Category;

/// Payload type of a Ferry release index.
pub const INDEX_PAYLOAD_TYPE: &str = "application/vnd.ferry.index.v1+json";

/// The file name of `item`'s index in the repository.
pub fn index_file(item: &str) -> String {
    format!("{item}.index.json")
}

/// Most releases one index lists.
pub const MAX_INDEX_RELEASES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseIndex {
    pub item: String,
    /// When this index was signed. A device refuses an index older than one it has seen.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// After this instant devices refuse the index (a stale or replayed repository).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub releases: Vec<IndexEntry>,
}

/// One release in the index. Everything but `version` and `manifest` is for display and
/// choosing; what is installed is decided by the signed manifest itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    pub version: semver::Version,
    pub category: Category,
    /// File name of the signed manifest, in the same directory as the index.
    pub manifest: String,
    #[serde(with = "time::serde::rfc3339")]
    pub released_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_url: Option<String>,
    /// Device classes the release is for; empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compatible: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("signed release index is not valid JSON for this agent: {0}")]
    Parse(String),
    #[error("signed release index is invalid: {0}")]
    Invalid(#[from] Invalid),
    #[error("release index {0:?} lists version {1} twice")]
    VersionTwice(String, semver::Version),
    #[error("release index lists {0} releases, more than {MAX_INDEX_RELEASES}")]
    TooMany(usize),
    #[error(
        "release index of {item} expired at {expires_at} (signed {issued_at}): the repository is \
         stale or replays an old index; sign a fresh one with `ferryctl release publish --to-dir` \
         or `ferryctl release index --dir`"
    )]
    Expired {
        item: String,
        issued_at: String,
        expires_at: String,
    },
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl ReleaseIndex {
    /// Verify signatures, then parse, validate and check expiry at `now`.
    pub fn verify(
        envelope: &Envelope,
        trusted: &TrustedKeys,
        threshold: usize,
        now: OffsetDateTime,
    ) -> Result<ReleaseIndex, IndexError> {
        let payload = envelope.verify(INDEX_PAYLOAD_TYPE, trusted, threshold)?;
        let index: ReleaseIndex =
            serde_json::from_slice(&payload).map_err(|e| IndexError::Parse(e.to_string()))?;
        index.validate()?;
        if index.expires_at <= now {
            return Err(IndexError::Expired {
                item: index.item.clone(),
                issued_at: rfc3339(index.issued_at),
                expires_at: rfc3339(index.expires_at),
            });
        }
        Ok(index)
    }

    pub fn validate(&self) -> Result<(), IndexError> {
        validate_item_name(&self.item)?;
        if self.releases.len() > MAX_INDEX_RELEASES {
            return Err(IndexError::TooMany(self.releases.len()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for entry in &self.releases {
            validate_artifact_name(&entry.manifest)?;
            if let Some(url) = &entry.release_url {
                validate_release_url(url)?;
            }
            if !seen.insert(&entry.version) {
                return Err(IndexError::VersionTwice(
                    self.item.clone(),
                    entry.version.clone(),
                ));
            }
        }
        Ok(())
    }

    /// The newest release for a device of `device_class` (a release with no classes suits any).
    pub fn newest_for(&self, device_class: Option<&str>) -> Option<&IndexEntry> {
        self.releases
            .iter()
            .filter(|e| {
                e.compatible.is_empty()
                    || device_class.is_some_and(|c| e.compatible.iter().any(|m| m == c))
            })
            .max_by(|a, b| a.version.cmp(&b.version))
    }

    pub fn entry(&self, version: &semver::Version) -> Option<&IndexEntry> {
        self.releases.iter().find(|e| &e.version == version)
    }

    pub fn to_payload(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    #[cfg(any(test, feature = "sign"))]
    pub fn sign(&self, keys: &[&crate::keys::SigningKeyFile]) -> Envelope {
        Envelope::sign(INDEX_PAYLOAD_TYPE, &self.to_payload(), keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKeyFile;
    use time::Duration;

    fn index(now: OffsetDateTime) -> ReleaseIndex {
        let entry = |v: &str, compatible: &[&str]| IndexEntry {
            version: v.parse().unwrap(),
            category: Category::Feature,
            manifest: format!("web-{v}.manifest.json"),
            released_at: now,
            notes: String::new(),
            release_url: None,
            compatible: compatible.iter().map(|c| c.to_string()).collect(),
        };
        ReleaseIndex {
            item: "web".into(),
            issued_at: now,
            expires_at: now + Duration::days(7),
            releases: vec![
                entry("1.0.0", &[]),
                entry("1.2.0", &["arm"]),
                entry("1.1.0", &[]),
            ],
        }
    }

    fn trusted(key: &SigningKeyFile) -> TrustedKeys {
        TrustedKeys::new([key.public()])
    }

    #[test]
    fn a_signed_index_verifies_and_names_the_newest_release_per_device_class() {
        let key = SigningKeyFile::from_seed([7; 32]);
        let now = OffsetDateTime::now_utc();
        let env = index(now).sign(&[&key]);
        let got = ReleaseIndex::verify(&env, &trusted(&key), 1, now).unwrap();
        assert_eq!(
            got.newest_for(Some("arm")).unwrap().version.to_string(),
            "1.2.0"
        );
        assert_eq!(
            got.newest_for(Some("x86")).unwrap().version.to_string(),
            "1.1.0"
        );
        assert_eq!(got.newest_for(None).unwrap().version.to_string(), "1.1.0");
    }

    #[test]
    fn an_expired_index_is_refused_with_what_to_do() {
        let key = SigningKeyFile::from_seed([7; 32]);
        let now = OffsetDateTime::now_utc();
        let env = index(now - Duration::days(8)).sign(&[&key]);
        let err = ReleaseIndex::verify(&env, &trusted(&key), 1, now).unwrap_err();
        assert!(matches!(err, IndexError::Expired { .. }), "{err}");
        assert!(err.to_string().contains("ferryctl release"), "{err}");
    }

    #[test]
    fn a_manifest_signature_is_not_an_index_signature() {
        let key = SigningKeyFile::from_seed([7; 32]);
        let now = OffsetDateTime::now_utc();
        let env = Envelope::sign(
            crate::envelope::MANIFEST_PAYLOAD_TYPE,
            &index(now).to_payload(),
            &[&key],
        );
        assert!(matches!(
            ReleaseIndex::verify(&env, &trusted(&key), 1, now),
            Err(IndexError::Verify(VerifyError::WrongType { .. }))
        ));
    }

    #[test]
    fn paths_and_duplicates_in_an_index_are_refused() {
        let now = OffsetDateTime::now_utc();
        let mut bad = index(now);
        bad.releases[0].manifest = "../etc/passwd".into();
        assert!(matches!(bad.validate(), Err(IndexError::Invalid(_))));
        let mut twice = index(now);
        twice.releases[1].version = "1.0.0".parse().unwrap();
        assert!(matches!(
            twice.validate(),
            Err(IndexError::VersionTwice(..))
        ));
    }
}
