//! Users' web UI passwords: kept only as argon2id hashes (PHC strings, with their own salt and
//! parameters), checked in a blocking thread (a check costs tens of milliseconds by design).
//! How often a name may be tried is [`crate::budget::PASSWORD`]'s business.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// The fewest characters a password may have.
pub const MIN_CHARS: usize = 12;
/// The most characters a password may have (hashing has a cost; nobody types more).
pub const MAX_CHARS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("a password needs at least {MIN_CHARS} characters")]
    TooShort,
    #[error("a password may have at most {MAX_CHARS} characters")]
    TooLong,
    #[error("no randomness for a salt: {0}")]
    Random(#[from] getrandom::Error),
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

/// Whether a password is one a user may choose (length only: a passphrase of common words
/// is a good password).
pub fn check(password: &str) -> Result<(), PasswordError> {
    let chars = password.chars().count();
    if chars > MAX_CHARS {
        return Err(PasswordError::TooLong);
    }
    if chars < MIN_CHARS {
        return Err(PasswordError::TooShort);
    }
    Ok(())
}

/// The argon2id hash (PHC string) of an acceptable password.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    check(password)?;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` is the one `phc` was made from (false for a hash that does not parse).
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > 4 * MAX_CHARS {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_kept_as_an_argon2id_hash_that_only_it_matches() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("correct"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterz", &h));
        assert!(!verify("correct horse battery", "not a hash"));
        // Each hash has its own salt.
        assert_ne!(h, hash("correct horse battery").unwrap());
    }

    #[test]
    fn short_and_huge_passwords_are_refused_with_the_rule() {
        assert_eq!(
            hash("short").unwrap_err().to_string(),
            "a password needs at least 12 characters"
        );
        assert!(matches!(
            check(&"x".repeat(2000)),
            Err(PasswordError::TooLong)
        ));
        assert!(check("twelve chars").is_ok());
    }
}
