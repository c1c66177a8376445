//! ferryctl's API client: one HTTP client and bearer token per run, the server's JSON errors
//! turned into messages; the commands' output lives beside it, one module per area.

mod fleet;
mod history;
mod publish;
mod rollout;

use anyhow::{bail, Context as _};
use ferry_manifests::wire::ApiError;
use reqwest::blocking::{RequestBuilder, Response};
use serde::de::DeserializeOwned;

use crate::args::ServerArgs;

pub struct Client {
    base: reqwest::Url,
    token: String,
    http: reqwest::blocking::Client,
}

impl Client {
    pub fn new(args: &ServerArgs) -> anyhow::Result<Client> {
        let mut base = reqwest::Url::parse(&args.server)
            .with_context(|| format!("--server {:?} is not a URL", args.server))?;
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let token = match &args.token {
            Some(t) if t.starts_with('@') => std::fs::read_to_string(&t[1..])
                .with_context(|| format!("cannot read token file {}", &t[1..]))?,
            Some(t) => t.clone(),
            None => bail!(
                "no operator token: pass --token or set FERRY_TOKEN (the server wrote one to DATA_DIR/operator.token)"
            ),
        };
        let mut builder = reqwest::blocking::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(None);
        if let Some(path) = &args.ca_cert {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read --ca-cert {}", path.display()))?;
            let ca = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
            builder = builder.tls_certs_only([ca]);
        }
        Ok(Client {
            base,
            token: token.trim().to_string(),
            http: builder.build()?,
        })
    }

    fn url(&self, path: &str) -> anyhow::Result<reqwest::Url> {
        Ok(self.base.join(path)?)
    }

    fn send(&self, req: RequestBuilder, what: &str) -> anyhow::Result<Response> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .with_context(|| format!("cannot reach the server at {} ({what})", self.base))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        match resp.json::<ApiError>() {
            Ok(e) => bail!("{what}: {} ({status})", e.message),
            Err(_) => bail!("{what}: server answered {status}"),
        }
    }

    fn get<T: DeserializeOwned>(&self, path: &str, what: &str) -> anyhow::Result<T> {
        let resp = self.send(self.http.get(self.url(path)?), what)?;
        resp.json()
            .with_context(|| format!("{what}: unexpected answer"))
    }
}

/// Percent-encodes a value for use as one path segment.
pub(crate) fn path_segment(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
