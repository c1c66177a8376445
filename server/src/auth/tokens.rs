//! Bearer tokens: their kinds, how they are made and hashed, and the first ones a new data
//! directory gets. Only sha256 hashes of tokens are stored: tokens are 256 random bits, so a
//! fast hash is enough to make a leaked database useless for logging in.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Context as _;
use sha2::{Digest, Sha256};

use crate::store::Store;

/// What a token is for. Operator and enrolment tokens are kept in the tokens table; a
/// device's credential is kept with its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An operator's: the API and the web UI.
    Operator,
    /// The fleet's enrolment token: a new device trades it for its own credential.
    Enrol,
    /// A device's own credential, given at enrolment.
    Device,
}

impl TokenKind {
    /// The kinds an operator may create through the API (`kind` in `POST /api/v1/tokens`).
    pub fn creatable(name: &str) -> Option<TokenKind> {
        match name {
            "operator" => Some(TokenKind::Operator),
            "enrol" => Some(TokenKind::Enrol),
            _ => None,
        }
    }

    /// The kind as the store and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Operator => "operator",
            TokenKind::Enrol => "enrol",
            TokenKind::Device => "device",
        }
    }

    /// The readable prefix of a token of this kind, so a leaked token is easy to recognise.
    fn prefix(self) -> &'static str {
        match self {
            TokenKind::Operator => "fop",
            TokenKind::Enrol => "fen",
            TokenKind::Device => "fdv",
        }
    }
}

pub fn hash_token(token: &str) -> String {
    hex::encode(token_digest(token))
}

/// The digest [`hash_token`] writes in hex (the in-memory credential cache keys by it).
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// A new random token of `kind`, with its readable prefix (`fop_`, `fen_`, `fdv_`).
pub fn new_token(kind: TokenKind) -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{}_{}", kind.prefix(), hex::encode(bytes)))
}

/// On first start, creates an operator token and a fleet enrolment token and writes them to
/// `DATA_DIR/operator.token` and `DATA_DIR/enrol.token` (mode 0600).
pub async fn bootstrap_tokens(store: &Store, data_dir: &Path) -> anyhow::Result<()> {
    for (kind, file) in [
        (TokenKind::Operator, "operator.token"),
        (TokenKind::Enrol, "enrol.token"),
    ] {
        if store.has_token(kind.as_str()).await? {
            continue;
        }
        let token = new_token(kind)?;
        let path = data_dir.join(file);
        // Written aside first, stored, then put in place: whoever sees the file (a script
        // waiting for the server's first start) finds the token already valid.
        let aside = data_dir.join(format!(".{file}.new"));
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&aside)
            .with_context(|| format!("cannot write {}", aside.display()))?;
        writeln!(f, "{token}").with_context(|| format!("cannot write {}", aside.display()))?;
        f.sync_all()?;
        store
            .add_token(
                kind.as_str(),
                "initial",
                &hash_token(&token),
                &crate::store::TokenLimits::default(),
            )
            .await?;
        std::fs::rename(&aside, &path)
            .with_context(|| format!("cannot put {} in place", path.display()))?;
        tracing::info!(path = %path.display(), "created the first {} token", kind.as_str());
    }
    Ok(())
}

/// Whether `token` is a live (unrevoked) token of `kind`.
pub async fn valid(
    store: &Store,
    kind: TokenKind,
    token_hash: &str,
) -> Result<bool, crate::store::StoreError> {
    Ok(live_name(store, kind, token_hash).await?.is_some())
}

/// The name of the live token of `kind` with this hash: who acted, for the history.
pub async fn live_name(
    store: &Store,
    kind: TokenKind,
    token_hash: &str,
) -> Result<Option<String>, crate::store::StoreError> {
    store.live_token_name(kind.as_str(), token_hash).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_their_kinds_prefix_and_hash_without_surrounding_space() {
        let t = new_token(TokenKind::Device).unwrap();
        assert!(t.starts_with("fdv_") && t.len() == 4 + 64, "{t}");
        assert_eq!(hash_token(&t), hash_token(&format!(" {t}\n")));
        assert_eq!(TokenKind::creatable("enrol"), Some(TokenKind::Enrol));
        assert_eq!(TokenKind::creatable("device"), None);
    }
}
