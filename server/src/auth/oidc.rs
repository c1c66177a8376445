//! Single sign-on to the web UI with OpenID Connect: the authorization code flow with PKCE
//! (S256), a `state` bound to the browser by a cookie and a `nonce` bound to the ID token.
//! The ID token's signature is checked against the provider's published keys (JWKS), with
//! its issuer, audience and expiry; the user's name and groups come from its claims, or from
//! the userinfo endpoint when the ID token leaves them out. The groups give the role, by the
//! first `[[oidc.roles]]` entry the user is in (docs/users.md); no entry, no sign-in.
//!
//! [`role_for`] and [`user_name`] decide; [`Oidc`] is the thin shell that talks to the
//! provider.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;
use sha2::Digest as _;

use crate::policy::roles::Role;

/// `[oidc]` in server.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcFileConfig {
    /// The provider's issuer URL, exactly as its discovery document names it.
    pub issuer: String,
    pub client_id: String,
    /// A file holding the client secret (never in server.toml itself).
    pub client_secret_file: PathBuf,
    /// This server's callback as the browser reaches it: `https://HOST/login/sso/callback`.
    pub redirect_url: String,
    /// Scopes asked for besides `openid` (default `profile`, `email`, `groups`).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// The claim that names the user (default `preferred_username`).
    #[serde(default)]
    pub username_claim: Option<String>,
    /// The claim that lists the user's groups (default `groups`).
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Trust this CA (PEM) for the provider, besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Group to role, the first that matches wins.
    #[serde(default)]
    pub roles: Vec<GroupRole>,
    /// The tenant users who sign in through this provider belong to (default `default`).
    #[serde(default)]
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GroupRole {
    pub group: String,
    pub role: String,
}

/// `[oidc]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    /// Read from `client_secret_file` at start; never logged.
    pub client_secret: String,
    pub redirect_url: String,
    pub scopes: Vec<String>,
    pub username_claim: String,
    pub groups_claim: String,
    pub ca_pem: Option<Vec<u8>>,
    pub roles: Vec<(String, Role)>,
    /// The tenant, by name, its users belong to.
    pub tenant: String,
}

impl OidcConfig {
    /// Reads the secret and CA files and checks every key; the error names the key.
    pub fn from_file(c: OidcFileConfig, file: &str) -> anyhow::Result<OidcConfig> {
        let bad = |what: String| anyhow::anyhow!("[oidc] in {file}: {what}");
        for (key, value) in [("issuer", &c.issuer), ("redirect_url", &c.redirect_url)] {
            let parsed = url::Url::parse(value)
                .map_err(|e| bad(format!("`{key}` {value:?} is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "https" | "http") {
                return Err(bad(format!("`{key}` {value:?} must be an https:// URL")));
            }
        }
        if c.client_id.trim().is_empty() {
            return Err(bad("`client_id` is empty".into()));
        }
        let client_secret = std::fs::read_to_string(&c.client_secret_file)
            .map_err(|e| {
                bad(format!(
                    "cannot read `client_secret_file` {}: {e}",
                    c.client_secret_file.display()
                ))
            })?
            .trim()
            .to_string();
        if client_secret.is_empty() {
            return Err(bad(format!(
                "`client_secret_file` {} is empty",
                c.client_secret_file.display()
            )));
        }
        let ca_pem = match &c.ca_file {
            Some(p) => Some(
                std::fs::read(p)
                    .map_err(|e| bad(format!("cannot read `ca_file` {}: {e}", p.display())))?,
            ),
            None => None,
        };
        if c.roles.is_empty() {
            return Err(bad(
                "no [[oidc.roles]]: say which group gives which role (group = \"ferry-admins\", role = \"admin\")".into(),
            ));
        }
        let roles = c
            .roles
            .iter()
            .map(|r| {
                r.role
                    .parse::<Role>()
                    .map(|role| (r.group.clone(), role))
                    .map_err(|e| bad(format!("[[oidc.roles]] group {:?}: {e}", r.group)))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(OidcConfig {
            issuer: c.issuer.trim_end_matches('/').to_string(),
            client_id: c.client_id,
            client_secret,
            redirect_url: c.redirect_url,
            scopes: c
                .scopes
                .unwrap_or_else(|| ["profile", "email", "groups"].map(String::from).to_vec()),
            username_claim: c
                .username_claim
                .unwrap_or_else(|| "preferred_username".into()),
            groups_claim: c.groups_claim.unwrap_or_else(|| "groups".into()),
            ca_pem,
            roles,
            tenant: c.tenant.unwrap_or_else(|| "default".into()),
        })
    }
}

/// Why a single sign-on did not complete (shown in the server's log; the browser is told
/// only that it did not).
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the provider at {url} did not answer as expected: {reason}")]
    Provider { url: String, reason: String },
    #[error("the sign-in came back with no matching start (expired after 10 minutes, or from another browser)")]
    UnknownState,
    #[error("the provider refused: {0}")]
    Refused(String),
    #[error("the ID token is not valid: {0}")]
    Token(String),
    #[error("the provider gave no `{0}` claim for this user (set username_claim, or add the scope that gives it)")]
    NoClaim(String),
    #[error(
        "user {name:?} is in none of the groups [[oidc.roles]] names (their groups: {groups:?})"
    )]
    NoRole { name: String, groups: Vec<String> },
    #[error("the provider's user name {0:?} has nothing usable as a Ferry user name")]
    BadName(String),
    #[error("cannot draw random bytes: {0}")]
    Random(#[from] getrandom::Error),
    #[error("too many single sign-ons under way; try again in a minute")]
    Busy,
}

/// The role the first `roles` entry the user's groups hold gives, if any.
pub fn role_for(groups: &[String], roles: &[(String, Role)]) -> Option<Role> {
    roles
        .iter()
        .find(|(g, _)| groups.iter().any(|have| have == g))
        .map(|(_, r)| *r)
}

/// A Ferry user name from the provider's: lower case, characters Ferry's names do not take
/// made `-`, at most 64; `None` when nothing is left.
pub fn user_name(provided: &str) -> Option<String> {
    let name: String = provided
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    let name = name.trim_start_matches(['.', '_', '-']).to_string();
    (!name.is_empty()).then_some(name)
}

/// A claim's groups: a list of strings, or one string.
fn groups_of(value: Option<&serde_json::Value>) -> Vec<String> {
    match value {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn random_b64(n: usize) -> Result<String, getrandom::Error> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// PKCE's S256 challenge of a verifier.
pub fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

/// A sign-in started, waiting for the browser to come back.
struct Pending {
    verifier: String,
    nonce: String,
    next: String,
    at: Instant,
}

/// How long a started sign-in may take.
const PENDING_FOR: Duration = Duration::from_secs(600);
/// The most sign-ins under way at once.
const PENDING_MAX: usize = 10_000;
/// How long the provider's discovery document and keys are kept.
const KEEP_PROVIDER: Duration = Duration::from_secs(3600);

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
    jwks_uri: String,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

struct Provider {
    discovery: Discovery,
    keys: jsonwebtoken::jwk::JwkSet,
    fetched: Instant,
}

/// Who signed in: the provider's subject, a Ferry user name, the role their groups give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub name: String,
    pub role: Role,
    /// Where the browser goes next.
    pub next: String,
}

/// The single sign-on of one server: its settings, an HTTP client, the provider's
/// discovery document and keys (fetched when first needed), the sign-ins under way.
pub struct Oidc {
    pub config: OidcConfig,
    http: reqwest::Client,
    provider: tokio::sync::Mutex<Option<Provider>>,
    pending: Mutex<HashMap<String, Pending>>,
}

impl Oidc {
    pub fn new(config: OidcConfig) -> anyhow::Result<Oidc> {
        let mut http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &config.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| anyhow::anyhow!("[oidc] ca_file is not PEM: {e}"))?
            {
                http = http.add_root_certificate(cert);
            }
        }
        Ok(Oidc {
            config,
            http: http.build()?,
            provider: tokio::sync::Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
        })
    }

    fn provider_error(url: &str, reason: impl std::fmt::Display) -> OidcError {
        OidcError::Provider {
            url: url.to_string(),
            reason: reason.to_string(),
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        let answer = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| Self::provider_error(url, e))?;
        if !answer.status().is_success() {
            return Err(Self::provider_error(url, answer.status()));
        }
        answer
            .json()
            .await
            .map_err(|e| Self::provider_error(url, e))
    }

    /// The provider's discovery document and keys: kept for an hour, fetched again sooner
    /// when `fresh_keys` (an ID token signed with a key not seen yet: the provider rotated).
    async fn provider(
        &self,
        fresh_keys: bool,
    ) -> Result<tokio::sync::MutexGuard<'_, Option<Provider>>, OidcError> {
        let mut held = self.provider.lock().await;
        let stale = match held.as_ref() {
            None => true,
            Some(p) => {
                p.fetched.elapsed() > KEEP_PROVIDER
                    || (fresh_keys && p.fetched.elapsed() > Duration::from_secs(10))
            }
        };
        if stale {
            let url = format!("{}/.well-known/openid-configuration", self.config.issuer);
            let discovery: Discovery = self.get_json(&url).await?;
            if discovery.issuer.trim_end_matches('/') != self.config.issuer {
                return Err(Self::provider_error(
                    &url,
                    format!(
                        "it names its issuer {:?}, not {:?} as [oidc] issuer says",
                        discovery.issuer, self.config.issuer
                    ),
                ));
            }
            let keys = self.get_json(&discovery.jwks_uri).await?;
            *held = Some(Provider {
                discovery,
                keys,
                fetched: Instant::now(),
            });
        }
        Ok(held)
    }

    /// Starts a sign-in: the provider's authorization URL to send the browser to, and the
    /// `state` to bind to it (a cookie).
    pub async fn begin(&self, next: String) -> Result<(String, String), OidcError> {
        let authorize = {
            let held = self.provider(false).await?;
            let Some(p) = held.as_ref() else {
                return Err(OidcError::UnknownState);
            };
            p.discovery.authorization_endpoint.clone()
        };
        let state = random_b64(24)?;
        let nonce = random_b64(24)?;
        let verifier = random_b64(48)?;
        let mut url = url::Url::parse(&authorize)
            .map_err(|e| Self::provider_error(&authorize, format!("not a URL: {e}")))?;
        let mut scope = vec!["openid".to_string()];
        scope.extend(
            self.config
                .scopes
                .iter()
                .filter(|s| *s != "openid")
                .cloned(),
        );
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.config.redirect_url)
            .append_pair("scope", &scope.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge(&verifier))
            .append_pair("code_challenge_method", "S256");
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|_, p| p.at.elapsed() < PENDING_FOR);
        if pending.len() >= PENDING_MAX {
            return Err(OidcError::Busy);
        }
        pending.insert(
            state.clone(),
            Pending {
                verifier,
                nonce,
                next,
                at: Instant::now(),
            },
        );
        Ok((url.into(), state))
    }

    /// Completes a sign-in the provider sent back with `code` for `state`.
    pub async fn finish(&self, state: &str, code: &str) -> Result<Identity, OidcError> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(state)
            .filter(|p| p.at.elapsed() < PENDING_FOR)
            .ok_or(OidcError::UnknownState)?;
        let (token_url, userinfo, basic) = {
            let held = self.provider(false).await?;
            let Some(p) = held.as_ref() else {
                return Err(OidcError::UnknownState);
            };
            let basic = p
                .discovery
                .token_endpoint_auth_methods_supported
                .as_ref()
                .is_none_or(|m| m.iter().any(|m| m == "client_secret_basic"));
            (
                p.discovery.token_endpoint.clone(),
                p.discovery.userinfo_endpoint.clone(),
                basic,
            )
        };
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.config.redirect_url),
            ("code_verifier", &pending.verifier),
        ];
        let mut request = self.http.post(&token_url);
        if basic {
            // RFC 6749 2.3.1: each part form-encoded before the Basic encoding.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            request = request.basic_auth(
                enc(&self.config.client_id),
                Some(enc(&self.config.client_secret)),
            );
        } else {
            form.push(("client_id", &self.config.client_id));
            form.push(("client_secret", &self.config.client_secret));
        }
        let answer = request
            .form(&form)
            .send()
            .await
            .map_err(|e| Self::provider_error(&token_url, e))?;
        let status = answer.status();
        let body: serde_json::Value = answer
            .json()
            .await
            .map_err(|e| Self::provider_error(&token_url, e))?;
        if !status.is_success() {
            return Err(OidcError::Refused(format!(
                "{status}: {}",
                body.get("error_description")
                    .or_else(|| body.get("error"))
                    .and_then(|v| v.as_str())
                    .unwrap_or("no reason given")
            )));
        }
        let id_token = body
            .get("id_token")
            .and_then(|v| v.as_str())
            .ok_or_else(|| OidcError::Token("the token answer holds no id_token".into()))?;
        let mut claims = self.verify(id_token, &pending.nonce).await?;
        let subject = claims
            .get("sub")
            .and_then(|v| v.as_str())
            .ok_or_else(|| OidcError::NoClaim("sub".into()))?
            .to_string();
        let wanted = [&self.config.username_claim, &self.config.groups_claim];
        if wanted.iter().any(|c| !claims.contains_key(c.as_str())) {
            if let (Some(url), Some(access)) =
                (userinfo, body.get("access_token").and_then(|v| v.as_str()))
            {
                let info: serde_json::Map<String, serde_json::Value> = {
                    let answer = self
                        .http
                        .get(&url)
                        .bearer_auth(access)
                        .send()
                        .await
                        .map_err(|e| Self::provider_error(&url, e))?;
                    if !answer.status().is_success() {
                        return Err(Self::provider_error(&url, answer.status()));
                    }
                    answer
                        .json()
                        .await
                        .map_err(|e| Self::provider_error(&url, e))?
                };
                // OpenID Connect Core 5.3.2: userinfo of another subject is not this user's.
                if info.get("sub").and_then(|v| v.as_str()) != Some(subject.as_str()) {
                    return Err(OidcError::Token(
                        "the userinfo answer is about another subject".into(),
                    ));
                }
                for (k, v) in info {
                    claims.entry(k).or_insert(v);
                }
            }
        }
        let provided = claims
            .get(&self.config.username_claim)
            .and_then(|v| v.as_str())
            .ok_or_else(|| OidcError::NoClaim(self.config.username_claim.clone()))?;
        let name = user_name(provided).ok_or_else(|| OidcError::BadName(provided.into()))?;
        let groups = groups_of(claims.get(&self.config.groups_claim));
        let role = role_for(&groups, &self.config.roles).ok_or(OidcError::NoRole {
            name: name.clone(),
            groups,
        })?;
        Ok(Identity {
            subject,
            name,
            role,
            next: pending.next,
        })
    }

    /// The ID token's claims once its signature (by a key the provider publishes), issuer,
    /// audience, expiry and nonce are checked.
    async fn verify(
        &self,
        id_token: &str,
        nonce: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, OidcError> {
        let header =
            jsonwebtoken::decode_header(id_token).map_err(|e| OidcError::Token(e.to_string()))?;
        let key = {
            let mut found = None;
            for fresh in [false, true] {
                let held = self.provider(fresh).await?;
                if let Some(p) = held.as_ref() {
                    found = match &header.kid {
                        Some(kid) => p.keys.find(kid).cloned(),
                        None if p.keys.keys.len() == 1 => p.keys.keys.first().cloned(),
                        None => None,
                    };
                }
                if found.is_some() {
                    break;
                }
            }
            found.ok_or_else(|| {
                OidcError::Token(format!(
                    "signed with key {:?}, which the provider does not publish",
                    header.kid
                ))
            })?
        };
        let key = jsonwebtoken::DecodingKey::from_jwk(&key)
            .map_err(|e| OidcError::Token(format!("the provider's key: {e}")))?;
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.client_id]);
        validation.leeway = 60;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            id_token,
            &key,
            &validation,
        )
        .map_err(|e| OidcError::Token(e.to_string()))?;
        if data.claims.get("nonce").and_then(|v| v.as_str()) != Some(nonce) {
            return Err(OidcError::Token(
                "its nonce is not this sign-in's (a replayed token?)".into(),
            ));
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_listed_group_the_user_is_in_gives_the_role() {
        let roles = vec![
            ("ferry-admins".to_string(), Role::Admin),
            ("ferry-operators".to_string(), Role::Operator),
            ("staff".to_string(), Role::Viewer),
        ];
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            role_for(&g(&["staff", "ferry-operators"]), &roles),
            Some(Role::Operator)
        );
        assert_eq!(
            role_for(&g(&["ferry-admins", "staff"]), &roles),
            Some(Role::Admin)
        );
        assert_eq!(role_for(&g(&["staff"]), &roles), Some(Role::Viewer));
        assert_eq!(role_for(&g(&["Ferry-Admins", "other"]), &roles), None);
        assert_eq!(role_for(&[], &roles), None);
    }

    #[test]
    fn a_providers_user_name_becomes_a_ferry_user_name() {
        assert_eq!(user_name("olga").as_deref(), Some("olga"));
        assert_eq!(user_name("Mixed.Case").as_deref(), Some("mixed.case"));
        assert_eq!(
            user_name("olga@example.com").as_deref(),
            Some("olga-example.com")
        );
        assert_eq!(user_name("-_x").as_deref(), Some("x"));
        assert_eq!(user_name("@@@").as_deref(), None);
        assert_eq!(user_name("").as_deref(), None);
        assert_eq!(user_name(&"a".repeat(100)).map(|n| n.len()), Some(64));
    }

    #[test]
    fn groups_are_a_list_or_one_string() {
        let v = serde_json::json!(["a", "b", 3]);
        assert_eq!(groups_of(Some(&v)), vec!["a", "b"]);
        assert_eq!(groups_of(Some(&serde_json::json!("a"))), vec!["a"]);
        assert!(groups_of(None).is_empty());
    }

    #[test]
    fn the_pkce_challenge_is_the_unpadded_base64url_of_the_verifiers_sha256() {
        // As Python's hashlib and base64.urlsafe_b64encode compute it (padding removed).
        assert_eq!(
            challenge("dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc"
        );
    }

    #[test]
    fn a_config_without_roles_or_secret_is_refused_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let file = |roles: Vec<GroupRole>, secret: PathBuf| OidcFileConfig {
            issuer: "https://id.example.com/".into(),
            client_id: "ferry".into(),
            client_secret_file: secret,
            redirect_url: "https://ferry.example.com/login/sso/callback".into(),
            scopes: None,
            username_claim: None,
            groups_claim: None,
            ca_file: None,
            roles,
            tenant: None,
        };
        let admins = vec![GroupRole {
            group: "ferry-admins".into(),
            role: "admin".into(),
        }];
        let ok =
            OidcConfig::from_file(file(admins.clone(), secret.clone()), "server.toml").unwrap();
        assert_eq!(ok.client_secret, "s3cret");
        assert_eq!(ok.issuer, "https://id.example.com");
        assert_eq!(ok.roles, vec![("ferry-admins".to_string(), Role::Admin)]);
        let e = OidcConfig::from_file(file(vec![], secret.clone()), "server.toml").unwrap_err();
        assert!(e.to_string().contains("[[oidc.roles]]"), "{e}");
        let e = OidcConfig::from_file(file(admins.clone(), dir.path().join("none")), "server.toml")
            .unwrap_err();
        assert!(e.to_string().contains("client_secret_file"), "{e}");
        let bad_role = vec![GroupRole {
            group: "g".into(),
            role: "root".into(),
        }];
        let e = OidcConfig::from_file(file(bad_role, secret), "server.toml").unwrap_err();
        assert!(e.to_string().contains("group \"g\""), "{e}");
    }
}
