//! The release manifest: what a signed release says about itself.
//!
//! The manifest travels inside an [`Envelope`]; the only way to obtain a [`VerifiedManifest`] is
//! [`Manifest::verify`], which checks signatures before it parses a byte, then validates every
//! field and the expiry. The agent acts on `VerifiedManifest` only.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::envelope::{Envelope, VerifyError, MANIFEST_PAYLOAD_TYPE};
use crate::invalid::Invalid;
pub use crate::invalid::{
    check_link_target, check_relative_path, is_sha256_hex, validate_artifact_name,
    validate_item_name, validate_release_url,
};
use crate::keys::TrustedKeys;

/// Most files one release may list; bounds the work a manifest can ask of a device.
pub const MAX_FILES: usize = 100_000;

/// What an update is. Ordered gravest first, so the least of several is the one to show.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Security,
    Bugfix,
    Feature,
    #[default]
    Unknown,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Security => "security",
            Category::Bugfix => "bugfix",
            Category::Feature => "feature",
            Category::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Category {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "security" => Ok(Category::Security),
            "bugfix" => Ok(Category::Bugfix),
            "feature" => Ok(Category::Feature),
            "unknown" => Ok(Category::Unknown),
            other => Err(format!(
                "unknown category {other:?}: use security, bugfix, feature or unknown"
            )),
        }
    }
}

/// How a release is placed on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `ROOT/releases/VERSION/` beside a `ROOT/current` link that is flipped atomically.
    #[default]
    Symlink,
    /// Files placed into existing paths under ROOT, with a backup and a journal.
    Overlay,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Symlink => "symlink",
            Layout::Overlay => "overlay",
        })
    }
}

impl std::str::FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "symlink" => Ok(Layout::Symlink),
            "overlay" => Ok(Layout::Overlay),
            other => Err(format!("unknown layout {other:?}: use symlink or overlay")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
}

impl Compression {
    /// The file name suffix of a tarball compressed this way.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::Gzip => "tar.gz",
            Compression::Zstd => "tar.zst",
        }
    }
}

/// An installer's own bundle carried as the artifact, for devices that update through a
/// hawkBit DDI client instead of the Ferry agent (docs/ddi.md). The installer checks the
/// bundle's own signature; the Ferry manifest signs its hash as for any release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bundle {
    /// A SWUpdate image (`.swu`): a CPIO archive led by a signed `sw-description`.
    Swupdate,
    /// A RAUC bundle (`.raucb`), CMS-signed.
    Rauc,
}

impl Bundle {
    /// The file name suffix of such a bundle.
    pub fn suffix(self) -> &'static str {
        match self {
            Bundle::Swupdate => "swu",
            Bundle::Rauc => "raucb",
        }
    }

    /// The bundle kind a file name says (`.swu` or `.raucb`).
    pub fn of_file_name(name: &str) -> Option<Bundle> {
        [Bundle::Swupdate, Bundle::Rauc]
            .into_iter()
            .find(|b| name.ends_with(&format!(".{}", b.suffix())))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Bundle::Swupdate => "swupdate",
            Bundle::Rauc => "rauc",
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            other => Err(format!("unknown compression {other:?}: use gzip or zstd")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// File name of the tarball, e.g. `web-1.1.0.tar.gz`.
    pub name: String,
    pub size: u64,
    pub sha256: String,
    /// Where to fetch it, tried in order. A relative URL resolves against the server's
    /// artifact base, `SERVER/api/v1/artifacts/`.
    pub urls: Vec<String>,
    #[serde(default)]
    pub compression: Compression,
    /// Set when the artifact is an installer's bundle rather than a tarball: such a release
    /// lists no files and goes only to DDI devices. Left out otherwise, so tarball releases
    /// read the same to agents that predate it (and those refuse a bundle's manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<Bundle>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path relative to the release root, `/`-separated, no `.` or `..` components.
    pub path: String,
    pub sha256: String,
    /// Permission bits applied on install (the tarball's own modes are ignored), written as
    /// an octal string such as `"0755"`.
    #[serde(with = "octal_mode")]
    pub mode: u32,
    pub size: u64,
    /// A configuration file people may edit on the device (`ferryctl release build
    /// --config-file`): an edited one is kept on install and this version is written beside
    /// it as `PATH.ferry-new`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub config: bool,
}

/// A symbolic link the release ships (a library's `.so` names, a virtual environment's
/// `bin/python`). Its target is signed like a file's content; it is relative to the link's
/// directory and resolves inside the release ([`check_link_target`]). The installer creates
/// it; nothing is ever written through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkEntry {
    /// Path of the link relative to the release root, like a file's.
    pub path: String,
    /// What the link points to, e.g. `libfoo.so.1.2` or `../lib/python3`.
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Install {
    #[serde(default)]
    pub layout: Layout,
    /// Shell commands run in order after the new version is in place.
    #[serde(default)]
    pub post_install: Vec<String>,
    /// A shell command that must exit 0 after post-install, or the install rolls back.
    #[serde(default)]
    pub health_check: Option<String>,
    /// systemd units this release runs (`web.service`): during a campaign's observation
    /// window the device watches that each stays active and does not restart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub item: String,
    pub version: semver::Version,
    #[serde(default)]
    pub category: Category,
    #[serde(with = "time::serde::rfc3339")]
    pub released_at: OffsetDateTime,
    /// After this instant devices refuse the manifest (freeze attacks).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(default)]
    pub notes: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_url: Option<String>,
    /// Device classes this release is for; empty means any device.
    #[serde(default)]
    pub compatible: Vec<String>,
    /// Whether a device that has a newer version may install this one.
    #[serde(default)]
    pub allow_downgrade: bool,
    pub artifact: Artifact,
    pub files: Vec<FileEntry>,
    /// Symbolic links, beside the files. Left out when there are none, so a release without
    /// links reads the same to agents that predate them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkEntry>,
    #[serde(default)]
    pub install: Install,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("signed manifest is not valid JSON for this agent: {0}")]
    Parse(String),
    #[error("signed manifest is invalid: {0}")]
    Invalid(#[from] Invalid),
    #[error(
        "manifest for {item} {version} expired at {expires_at}; publish a freshly signed release"
    )]
    Expired {
        item: String,
        version: semver::Version,
        expires_at: String,
    },
}

/// A manifest whose signatures, fields and expiry have been checked.
#[derive(Debug, Clone)]
pub struct VerifiedManifest {
    manifest: Manifest,
    /// The exact signed bytes, kept so the agent can store what it verified.
    payload: Vec<u8>,
}

impl VerifiedManifest {
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
}

impl std::ops::Deref for VerifiedManifest {
    type Target = Manifest;
    fn deref(&self) -> &Manifest {
        &self.manifest
    }
}

impl Manifest {
    /// Verify signatures, then parse, validate and check expiry at `now`.
    pub fn verify(
        envelope: &Envelope,
        trusted: &TrustedKeys,
        threshold: usize,
        now: OffsetDateTime,
    ) -> Result<VerifiedManifest, ManifestError> {
        let payload = envelope.verify(MANIFEST_PAYLOAD_TYPE, trusted, threshold)?;
        let manifest: Manifest =
            serde_json::from_slice(&payload).map_err(|e| ManifestError::Parse(e.to_string()))?;
        manifest.validate()?;
        if manifest.expires_at <= now {
            return Err(ManifestError::Expired {
                item: manifest.item.clone(),
                version: manifest.version.clone(),
                expires_at: manifest
                    .expires_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            });
        }
        Ok(VerifiedManifest { manifest, payload })
    }

    /// Parse without verifying. For the server's index and for tools; never for installing.
    pub fn parse_unverified(envelope: &Envelope) -> Result<Manifest, ManifestError> {
        let payload = envelope.unverified_payload()?;
        let manifest: Manifest =
            serde_json::from_slice(&payload).map_err(|e| ManifestError::Parse(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    pub fn to_payload(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    #[cfg(any(test, feature = "sign"))]
    pub fn sign(&self, keys: &[&crate::keys::SigningKeyFile]) -> Envelope {
        Envelope::sign(MANIFEST_PAYLOAD_TYPE, &self.to_payload(), keys)
    }

    /// Checks everything that can be checked without the artifact.
    pub fn validate(&self) -> Result<(), Invalid> {
        validate_item_name(&self.item)?;
        for unit in &self.install.units {
            let ok = (1..=256).contains(&unit.len())
                && !unit.starts_with('-')
                && unit.contains('.')
                && unit
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ":_.@-".contains(c));
            if !ok || self.install.units.len() > 16 {
                return Err(Invalid::Unit(unit.clone()));
            }
        }
        if let Some(url) = &self.release_url {
            validate_release_url(url)?;
        }
        if !is_sha256_hex(&self.artifact.sha256) {
            return Err(Invalid::ArtifactSha256(self.artifact.sha256.clone()));
        }
        if self.artifact.urls.is_empty() {
            return Err(Invalid::NoArtifactUrls);
        }
        validate_artifact_name(&self.artifact.name)?;
        if self.artifact.bundle.is_none() && Bundle::of_file_name(&self.artifact.name).is_some() {
            return Err(Invalid::NotBundle(self.artifact.name.clone()));
        }
        if let Some(bundle) = self.artifact.bundle {
            let plain = self.files.is_empty()
                && self.links.is_empty()
                && self.install == Install::default();
            if !plain || Bundle::of_file_name(&self.artifact.name) != Some(bundle) {
                return Err(Invalid::Bundle(bundle.suffix()));
            }
        }
        if self.files.len() + self.links.len() > MAX_FILES {
            return Err(Invalid::TooManyFiles {
                count: self.files.len() + self.links.len(),
                max: MAX_FILES,
            });
        }
        let mut seen = BTreeSet::new();
        for file in &self.files {
            check_relative_path(&file.path).map_err(|problem| Invalid::FilePath {
                path: file.path.clone(),
                problem,
            })?;
            if !seen.insert(file.path.as_str()) {
                return Err(Invalid::FileTwice(file.path.clone()));
            }
            if !is_sha256_hex(&file.sha256) {
                return Err(Invalid::FileSha256(file.path.clone()));
            }
            if file.mode > 0o7777 {
                return Err(Invalid::FileMode {
                    path: file.path.clone(),
                    mode: file.mode,
                });
            }
        }
        for link in &self.links {
            check_relative_path(&link.path).map_err(|problem| Invalid::FilePath {
                path: link.path.clone(),
                problem,
            })?;
            if !seen.insert(link.path.as_str()) {
                return Err(Invalid::LinkTwice(link.path.clone()));
            }
            check_link_target(&link.path, &link.target).map_err(|problem| Invalid::LinkTarget {
                path: link.path.clone(),
                target: link.target.clone(),
                problem,
            })?;
        }
        // Nothing lies under a link: every entry's parent directories are real directories.
        let links: BTreeSet<&str> = self.links.iter().map(|l| l.path.as_str()).collect();
        for path in &seen {
            let mut at = 0;
            while let Some(i) = path[at..].find('/') {
                let parent = &path[..at + i];
                if links.contains(parent) {
                    return Err(Invalid::UnderLink {
                        path: path.to_string(),
                        link: parent.to_string(),
                    });
                }
                at += i + 1;
            }
        }
        Ok(())
    }

    /// Total bytes of all files once unpacked.
    pub fn unpacked_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

mod octal_mode {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{mode:04o}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let text = String::deserialize(d)?;
        let digits = text.strip_prefix("0o").unwrap_or(&text);
        if digits.is_empty() || digits.len() > 5 {
            return Err(serde::de::Error::custom(format!(
                "mode {text:?} must be an octal string such as \"0755\""
            )));
        }
        u32::from_str_radix(digits, 8).map_err(|_| {
            serde::de::Error::custom(format!(
                "mode {text:?} must be an octal string such as \"0755\""
            ))
        })
    }
}

/// Canonical artifact file name for a release.
pub fn artifact_file_name(
    item: &str,
    version: &semver::Version,
    compression: Compression,
) -> String {
    format!("{item}-{version}.{}", compression.suffix())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::invalid::LinkProblem;
    use crate::keys::SigningKeyFile;
    use time::Duration;

    pub(crate) fn sample(now: OffsetDateTime) -> Manifest {
        Manifest {
            item: "web".into(),
            version: semver::Version::new(1, 1, 0),
            category: Category::Feature,
            released_at: now,
            expires_at: now + Duration::days(30),
            notes: "notes".into(),
            release_url: None,
            compatible: vec![],
            allow_downgrade: false,
            artifact: Artifact {
                name: "web-1.1.0.tar.gz".into(),
                size: 10,
                sha256: "a".repeat(64),
                urls: vec!["web-1.1.0.tar.gz".into()],
                compression: Compression::Gzip,
                bundle: None,
            },
            files: vec![FileEntry {
                path: "bin/web".into(),
                sha256: "b".repeat(64),
                mode: 0o755,
                size: 10,
                config: false,
            }],
            links: vec![],
            install: Install::default(),
        }
    }

    #[test]
    fn a_bundle_release_is_a_plain_named_bundle_and_a_tarball_is_not_named_as_one() {
        let now = OffsetDateTime::now_utc();
        let mut m = sample(now);
        m.artifact.name = "web-1.1.0.swu".into();
        assert!(matches!(m.validate(), Err(Invalid::NotBundle(_))));
        m.artifact.bundle = Some(Bundle::Swupdate);
        // It lists files: refused.
        assert!(matches!(m.validate(), Err(Invalid::Bundle("swu"))));
        m.files.clear();
        m.links.clear();
        m.install = Install::default();
        assert_eq!(m.validate(), Ok(()));
        m.artifact.bundle = Some(Bundle::Rauc);
        assert!(matches!(m.validate(), Err(Invalid::Bundle("raucb"))));
        m.artifact.name = "web-1.1.0.raucb".into();
        assert_eq!(m.validate(), Ok(()));
        // An agent that predates bundles refuses the manifest (unknown field), as it must.
        let text = String::from_utf8(m.to_payload()).unwrap();
        assert!(text.contains("\"bundle\": \"rauc\""), "{text}");
    }

    #[test]
    fn links_resolve_inside_the_release_and_nothing_lies_under_one() {
        let now = OffsetDateTime::now_utc();
        let link = |path: &str, target: &str| LinkEntry {
            path: path.into(),
            target: target.into(),
        };
        for ok in [
            link("lib/libfoo.so", "libfoo.so.1"),
            link("venv/bin/python", "../../usr/bin/python3"),
            link("venv/lib64", "lib"),
            link("a/b/up", ".."),
        ] {
            let mut m = sample(now);
            m.links = vec![ok.clone()];
            assert_eq!(m.validate(), Ok(()), "{ok:?}");
        }
        for (bad, problem) in [
            (link("x", "/etc/passwd"), LinkProblem::Absolute),
            (link("x", ".."), LinkProblem::Escapes),
            (link("a/x", "../../etc"), LinkProblem::Escapes),
            (link("a/x", "b/../../.."), LinkProblem::NotPlain),
            (link("a/x", "./b"), LinkProblem::NotPlain),
            (link("a/x", "b//c"), LinkProblem::NotPlain),
            (link("a/x", ""), LinkProblem::Empty),
        ] {
            let mut m = sample(now);
            m.links = vec![bad.clone()];
            match m.validate() {
                Err(Invalid::LinkTarget { problem: p, .. }) => assert_eq!(p, problem, "{bad:?}"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
        let mut m = sample(now);
        m.links = vec![link("bin", "sbin")];
        assert!(matches!(m.validate(), Err(Invalid::UnderLink { .. })));
        m.links = vec![link("bin/web", "other")];
        assert!(matches!(m.validate(), Err(Invalid::LinkTwice(_))));
        m.links = vec![link("../x", "y")];
        assert!(matches!(m.validate(), Err(Invalid::FilePath { .. })));
        // A release without links serialises as before.
        let text = String::from_utf8(sample(now).to_payload()).unwrap();
        assert!(!text.contains("links"));
    }

    #[test]
    fn a_release_url_is_an_http_link_or_the_manifest_is_refused() {
        let now = OffsetDateTime::now_utc();
        let mut m = sample(now);
        for ok in ["https://example.org/web/1.1.0", "http://forge.local/r/1"] {
            m.release_url = Some(ok.into());
            assert_eq!(m.validate(), Ok(()), "{ok}");
        }
        for bad in [
            "javascript:fetch('/settings')",
            "JAVASCRIPT:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "https://",
            "https:///path",
            "https://example.org/a b",
            "https://example.org/\u{7}",
        ] {
            m.release_url = Some(bad.into());
            assert!(
                matches!(m.validate(), Err(Invalid::ReleaseUrl(_))),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn a_signed_manifest_verifies() {
        let now = OffsetDateTime::now_utc();
        let key = SigningKeyFile::from_seed([3; 32]);
        let env = sample(now).sign(&[&key]);
        let verified = Manifest::verify(&env, &TrustedKeys::new([key.public()]), 1, now).unwrap();
        assert_eq!(verified.item, "web");
        assert_eq!(verified.version, semver::Version::new(1, 1, 0));
    }

    #[test]
    fn an_expired_manifest_is_refused() {
        let now = OffsetDateTime::now_utc();
        let key = SigningKeyFile::from_seed([3; 32]);
        let env = sample(now).sign(&[&key]);
        let later = now + Duration::days(31);
        let err = Manifest::verify(&env, &TrustedKeys::new([key.public()]), 1, later).unwrap_err();
        assert!(matches!(err, ManifestError::Expired { .. }), "{err}");
        assert!(err.to_string().contains("expired"));
    }

    #[test]
    fn escaping_and_duplicate_paths_are_invalid() {
        let now = OffsetDateTime::now_utc();
        for bad in ["../x", "/etc/passwd", "a/../../b", "a//b", "./a", ""] {
            let mut m = sample(now);
            m.files[0].path = bad.into();
            assert!(m.validate().is_err(), "{bad:?} accepted");
        }
        let mut m = sample(now);
        m.files.push(m.files[0].clone());
        assert!(m.validate().unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn unknown_fields_in_signed_bytes_are_refused() {
        let now = OffsetDateTime::now_utc();
        let key = SigningKeyFile::from_seed([3; 32]);
        let mut value = serde_json::to_value(sample(now)).unwrap();
        value["surprise"] = serde_json::json!(true);
        let env = Envelope::sign(
            MANIFEST_PAYLOAD_TYPE,
            &serde_json::to_vec(&value).unwrap(),
            &[&key],
        );
        let err = Manifest::verify(&env, &TrustedKeys::new([key.public()]), 1, now).unwrap_err();
        assert!(matches!(err, ManifestError::Parse(_)), "{err}");
    }

    #[test]
    fn the_example_manifest_parses() {
        let text = include_str!("../examples/web-1.1.0.payload.json");
        let manifest: Manifest = serde_json::from_str(text).unwrap();
        manifest.validate().unwrap();
        let env: Envelope =
            serde_json::from_str(include_str!("../examples/web-1.1.0.manifest.json")).unwrap();
        let key = crate::keys::PublicKey::from_file_str(
            include_str!("../examples/example-release.pub"),
            std::path::Path::new("example-release.pub"),
        )
        .unwrap();
        let parsed = Manifest::parse_unverified(&env).unwrap();
        assert_eq!(parsed, manifest);
        // The example expires far in the future so it keeps verifying.
        Manifest::verify(&env, &TrustedKeys::new([key]), 1, OffsetDateTime::now_utc()).unwrap();
    }
}
