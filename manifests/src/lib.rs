//! The single definition of what Ferry signs and sends.
//!
//! - [`keys`]: ed25519 release key files (`ferryctl keygen`) and their key ids.
//! - [`envelope`]: the signature envelope: exact payload bytes plus signatures over a type tag
//!   and those bytes (DSSE-style), verified *before* the payload is parsed.
//! - [`manifest`]: the release manifest inside the envelope.
//! - [`delta`]: file-level deltas between releases (unsigned: checked against the manifest).
//! - [`tarball`]: what a release's tarball may hold, checked by the agent and the server alike.
//! - [`index`]: the signed, expiring release index of a static release repository.
//! - [`wire`]: the JSON types of the HTTP API shared by the agent, the server and `ferryctl`.
//!
//! Nothing else in Ferry knows these formats; the agent and server only call into this crate.

pub mod delta;
pub mod envelope;
pub mod index;
pub mod invalid;
pub mod keys;
pub mod manifest;
pub mod rate;
pub mod root;
pub mod tarball;
pub mod wire;

pub use envelope::{Envelope, VerifyError};
pub use index::{IndexEntry, IndexError, ReleaseIndex};
pub use invalid::{Invalid, LinkProblem, PathProblem};
#[cfg(any(test, feature = "sign"))]
pub use keys::SigningKeyFile;
pub use keys::{KeyError, KeyId, PublicKey, TrustedKeys};
pub use manifest::{
    Artifact, Category, FileEntry, Install, Layout, LinkEntry, Manifest, ManifestError,
    VerifiedManifest,
};
