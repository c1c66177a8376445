//! ferryctl's API client: one HTTP client and bearer token per run, the server's JSON errors
//! turned into messages; the commands' output lives beside it, one module per area.

mod fleet;
mod history;
mod mqtt;
pub use mqtt::{read_secret, request as mqtt_request};
mod publish;
mod rollout;
mod terminal;
mod webhooks;

use anyhow::{bail, Context as _};
use ferry_manifests::wire::ApiError;
use reqwest::blocking::{RequestBuilder, Response};
use serde::de::DeserializeOwned;

use crate::args::ServerArgs;

/// `ferryctl packages search`'s question.
pub struct PackageSearch<'a> {
    pub name: Option<&'a str>,
    pub older_than: Option<&'a str>,
    pub pending: bool,
    pub category: Option<&'a str>,
}

#[derive(Clone)]
pub struct Client {
    base: reqwest::Url,
    token: String,
    http: reqwest::blocking::Client,
}

impl Client {
    pub fn new(args: &ServerArgs) -> anyhow::Result<Client> {
        let wrong = || {
            format!(
                "--server (or FERRY_SERVER) {:?} must be the server's URL, such as http://127.0.0.1:8080 or https://ferry.example.org",
                args.server
            )
        };
        let mut base = reqwest::Url::parse(&args.server).with_context(wrong)?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            bail!(wrong());
        }
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
        let builder = || {
            reqwest::blocking::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .timeout(None)
        };
        if let Some(path) = &args.ca_cert {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read --ca-cert {}", path.display()))?;
            let ca = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
            return Ok(Client {
                http: builder().tls_certs_only([ca]).build()?,
                base,
                token: token.trim().to_string(),
            });
        }
        let http = match builder().build() {
            Ok(http) => http,
            // No CA certificates on this machine: plain http needs none.
            Err(_) if base.scheme() == "http" => builder().tls_certs_only([]).build()?,
            Err(e) => {
                return Err(anyhow::Error::new(e).context(
                    "cannot load this system's CA certificates: install them (apt-get install ca-certificates) or pass --ca-cert PEM",
                ))
            }
        };
        Ok(Client {
            base,
            token: token.trim().to_string(),
            http,
        })
    }

    fn url(&self, path: &str) -> anyhow::Result<reqwest::Url> {
        Ok(self.base.join(path)?)
    }

    /// Sends keystrokes, a window size or a keep-alive to an interactive install's terminal
    /// (`url`) under `lease`.
    pub fn terminal_input(
        &self,
        url: &reqwest::Url,
        lease: &str,
        text: Option<String>,
        size: Option<(u16, u16)>,
    ) -> anyhow::Result<()> {
        let body = ferry_manifests::wire::TerminalInput {
            lease: Some(lease.to_string()),
            text,
            cols: size.map(|s| s.0),
            rows: size.map(|s| s.1),
        };
        self.send(
            self.http.post(url.clone()).json(&body),
            "sending to the install's terminal",
        )?;
        Ok(())
    }

    fn send(&self, req: RequestBuilder, what: &str) -> anyhow::Result<Response> {
        let resp = match req.bearer_auth(&self.token).send() {
            Ok(r) => r,
            Err(e) => bail!(
                "{what}: cannot reach the server at {}: {}",
                self.base,
                transport_message(e)
            ),
        };
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let url = resp.url().clone();
        match resp.json::<ApiError>() {
            // A route the server does not have: most likely a wrong base path in --server.
            Ok(e) if status == reqwest::StatusCode::NOT_FOUND && e.message.starts_with("no such endpoint") => {
                bail!("{what}: {url} does not exist on the server ({status}); is --server the server's base URL?")
            }
            // The server's own trouble: its log has the details under the request's id.
            Ok(e) if status.is_server_error() => match &e.request_id {
                Some(id) => bail!("{what}: {} ({status}; request {id} in the server's log)", e.message),
                None => bail!("{what}: {} ({status})", e.message),
            },
            Ok(e) => bail!("{what}: {} ({status})", e.message),
            Err(_) => bail!("{what}: {url} answered {status}, not Ferry's API; is --server the server's base URL?"),
        }
    }

    fn get<T: DeserializeOwned>(&self, path: &str, what: &str) -> anyhow::Result<T> {
        let resp = self.send(self.http.get(self.url(path)?), what)?;
        resp.json()
            .with_context(|| format!("{what}: unexpected answer"))
    }
}

/// A transport error in words: the causes in order, the URL once, and what to do about the
/// usual mistakes.
fn transport_message(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    if message.contains("InvalidContentType") || message.contains("corrupt message") {
        message.push_str("; the server does not speak TLS on this port: use http://, or start the server with --tls-cert");
    }
    message
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

/// One JSON value on one line (`--json` with `--follow`: JSON lines, one event each).
pub(crate) fn print_json_line<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
