//! The agent's HTTP client: enrolment, check-in, manifests, reports. Thin: it moves wire types
//! and maps transport failures to [`Error::Unreachable`].

use std::time::Duration;

use ferry_manifests::envelope::MAX_ENVELOPE_BYTES;
use ferry_manifests::wire::{
    ApiError, CertificateRequest, CertificateResponse, CheckInRequest, CheckInResponse,
    DeviceFacts, EnrolRequest, EnrolResponse, InventoryUpload, Report, ReportAck, ReportBatch,
};
use ferry_manifests::Envelope;

use crate::identity::ClientAuth;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::Url;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// Upper bound for an API call (not for artifact downloads, which use the read timeout and
/// the minimum rate instead).
pub const API_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Api {
    pub base: Url,
    http: Client,
    token: Option<String>,
    /// What the client was built with, to build it again with a client certificate.
    connect: Duration,
    read: Duration,
    server_ca: Option<Vec<u8>>,
    /// Whether requests carry a client certificate.
    has_identity: bool,
}

impl Api {
    /// `connect` bounds connection set-up; `read` bounds every wait for bytes.
    pub fn new(
        base: Url,
        connect: Duration,
        read: Duration,
        server_ca: Option<&[u8]>,
    ) -> Result<Api, Error> {
        let http = build(&base, connect, read, server_ca, None)?;
        Ok(Api {
            base,
            http,
            token: None,
            connect,
            read,
            server_ca: server_ca.map(<[u8]>::to_vec),
            has_identity: false,
        })
    }

    /// From now on, connections present this client certificate and key (PEM) to servers
    /// that ask for one (the fleet server; mirrors do not ask).
    pub fn set_identity(&mut self, auth: &crate::identity::ClientAuth) -> Result<(), Error> {
        self.http = build(
            &self.base,
            self.connect,
            self.read,
            self.server_ca.as_deref(),
            Some(auth),
        )?;
        self.has_identity = true;
        Ok(())
    }

    /// Whether requests carry a client certificate.
    pub fn has_identity(&self) -> bool {
        self.has_identity
    }

    /// The bearer credential (empty: none).
    pub fn set_token(&mut self, token: String) {
        self.token = (!token.is_empty()).then_some(token);
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    pub fn url(&self, path: &str) -> Result<Url, Error> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|source| Error::BadUrl {
                url: path.to_string(),
                source,
            })
    }

    /// Whether `url` is on the server itself (so it may carry the device credential).
    pub fn same_origin(&self, url: &Url) -> bool {
        url.scheme() == self.base.scheme()
            && url.host() == self.base.host()
            && url.port_or_known_default() == self.base.port_or_known_default()
    }

    pub fn http(&self) -> &Client {
        &self.http
    }

    pub fn authorize(&self, req: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    fn send(&self, url: &Url, req: RequestBuilder) -> Result<Response, Error> {
        // The credential goes only to the server itself, never to a repository or mirror.
        let req = if self.same_origin(url) {
            self.authorize(req)
        } else {
            req
        };
        let resp = req
            .timeout(API_TIMEOUT)
            .send()
            .map_err(|e| transport_error(url, e))?;
        check_status(url, resp)
    }

    fn json<T: DeserializeOwned>(&self, url: &Url, resp: Response) -> Result<T, Error> {
        // A body cut off or stalled is the network's doing (try again), not a strange answer
        // (investigate).
        let cut = |message: String| Error::Unreachable {
            what: "server",
            url: url.to_string(),
            message: format!("the answer was cut off: {message}"),
        };
        let announced = resp.content_length();
        let bytes = resp.bytes().map_err(|e| cut(e.to_string()))?;
        if announced.is_some_and(|n| (bytes.len() as u64) < n) {
            return Err(cut(format!(
                "{} of {} bytes arrived",
                bytes.len(),
                announced.unwrap_or_default()
            )));
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::Server {
            url: url.to_string(),
            status: 200,
            message: format!("unexpected response body: {e}"),
        })
    }

    /// Enrols with an enrolment token (and a CSR for the device's key), or with none when
    /// the connection presents a factory certificate.
    pub fn enrol(
        &self,
        enrol_token: &str,
        facts: &DeviceFacts,
        csr: Option<String>,
    ) -> Result<EnrolResponse, Error> {
        let url = self.url("api/v1/enrol")?;
        let body = EnrolRequest {
            enrol_token: enrol_token.to_string(),
            facts: facts.clone(),
            csr,
        };
        let resp = self.send(&url, self.http.post(url.clone()).json(&body))?;
        self.json(&url, resp)
    }

    /// A certificate for the device's key (to renew, or to move from a bearer token).
    pub fn certificate(&self, csr: String) -> Result<CertificateResponse, Error> {
        let url = self.url("api/v1/device/certificate")?;
        let body = CertificateRequest { csr };
        let resp = self.send(&url, self.http.post(url.clone()).json(&body))?;
        self.json(&url, resp)
    }

    /// Checks in; with `wait_secs` > 0 the server may hold the answer that long (long-poll).
    /// `inventory_digest`: the digest of what the device's sources found, if it has any.
    pub fn check_in(
        &self,
        facts: &DeviceFacts,
        wait_secs: u64,
        inventory_digest: Option<String>,
        health: Vec<ferry_manifests::wire::HealthSample>,
    ) -> Result<CheckInResponse, Error> {
        let url = self.url("api/v1/device/checkin")?;
        let body = CheckInRequest {
            facts: facts.clone(),
            wait_secs,
            inventory_digest,
            health,
        };
        let req = self.http.post(url.clone()).json(&body);
        let resp = if wait_secs > 0 {
            // The answer may legitimately take the whole wait; allow for it on top of the
            // usual bound.
            let resp = self
                .authorize(req)
                .timeout(API_TIMEOUT + Duration::from_secs(wait_secs))
                .send()
                .map_err(|e| transport_error(&url, e))?;
            check_status(&url, resp)?
        } else {
            self.send(&url, req)?
        };
        self.json(&url, resp)
    }

    /// Fetches a signed envelope, refusing oversized bodies before parsing.
    pub fn envelope(&self, path: &str) -> Result<(Envelope, Vec<u8>), Error> {
        let url = self.url(path)?;
        let resp = self.send(&url, self.http.get(url.clone()))?;
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_ENVELOPE_BYTES as u64)
        {
            return Err(Error::Server {
                url: url.to_string(),
                status: 200,
                message: format!("manifest larger than {MAX_ENVELOPE_BYTES} bytes"),
            });
        }
        let mut bytes = Vec::new();
        use std::io::Read as _;
        resp.take(MAX_ENVELOPE_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::Unreachable {
                what: "server",
                url: url.to_string(),
                message: e.to_string(),
            })?;
        let envelope = Envelope::parse(&bytes).map_err(|e| Error::Server {
            url: url.to_string(),
            status: 200,
            message: e.to_string(),
        })?;
        Ok((envelope, bytes))
    }

    /// Sends the whole inventory (the server asked for it at check-in).
    pub fn send_inventory(&self, upload: &InventoryUpload) -> Result<(), Error> {
        let url = self.url("api/v1/device/inventory")?;
        self.send(&url, self.http.post(url.clone()).json(upload))?;
        Ok(())
    }

    /// A small file at `url` (at most `max` bytes), or `None` when there is none (404).
    pub fn small_file(&self, url: &Url, max: u64) -> Result<Option<Vec<u8>>, Error> {
        let resp = match self.send(url, self.http.get(url.clone())) {
            Err(Error::Server { status: 404, .. }) => return Ok(None),
            other => other?,
        };
        let mut bytes = Vec::new();
        use std::io::Read as _;
        resp.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::Unreachable {
                what: "repository",
                url: url.to_string(),
                message: e.to_string(),
            })?;
        if bytes.len() as u64 > max {
            return Err(Error::Server {
                url: url.to_string(),
                status: 200,
                message: format!("larger than {max} bytes"),
            });
        }
        Ok(Some(bytes))
    }

    /// What the operator's terminal sent to interactive job `job` after event `after`; the
    /// server holds the request up to 20 s when there is nothing yet.
    pub fn terminal_poll(
        &self,
        job: &str,
        after: u64,
    ) -> Result<ferry_manifests::wire::TerminalPoll, Error> {
        let url = self.url(&format!("api/v1/device/terminal/{job}?after={after}"))?;
        let resp = self
            .authorize(self.http.get(url.clone()))
            .timeout(API_TIMEOUT)
            .send()
            .map_err(|e| transport_error(&url, e))?;
        let resp = check_status(&url, resp)?;
        self.json(&url, resp)
    }

    pub fn accept_campaign(&self, id: &str) -> Result<ferry_manifests::wire::CampaignOffer, Error> {
        let url = self.url(&format!("api/v1/device/campaigns/{id}/accept"))?;
        let resp = self.send(&url, self.http.post(url.clone()))?;
        self.json(&url, resp)
    }

    /// Tells the server why a job waits (best effort: the next run tries again anyway).
    pub fn note_waiting(&self, job_id: &str, message: &str) {
        let sent = self.url("api/v1/device/waiting").and_then(|url| {
            let body = ferry_manifests::wire::Waiting {
                job_id: job_id.to_string(),
                message: message.to_string(),
            };
            self.send(&url, self.http.post(url.clone()).json(&body))
                .map(|_| ())
        });
        if let Err(e) = sent {
            tracing::debug!("could not tell the server why the job waits: {e}");
        }
    }

    pub fn send_reports(
        &self,
        reports: Vec<Report>,
        package_reports: Vec<ferry_manifests::wire::PackageReport>,
    ) -> Result<ReportAck, Error> {
        let url = self.url("api/v1/device/reports")?;
        let resp = self.send(
            &url,
            self.http.post(url.clone()).json(&ReportBatch {
                reports,
                package_reports,
                sent_at: Some(ferry_manifests::wire::now()),
            }),
        )?;
        self.json(&url, resp)
    }
}

/// Sends hook output of a job to the server as it arrives, at most every
/// [`LiveOutput::INTERVAL`]. Best effort: the report carries the whole output anyway.
pub struct LiveOutput<'a> {
    api: &'a Api,
    job_id: Option<&'a str>,
    pending: String,
    last: std::time::Instant,
    failed: bool,
    interval: Duration,
}

impl<'a> LiveOutput<'a> {
    pub const INTERVAL: Duration = Duration::from_millis(200);

    pub fn new(api: &'a Api, job_id: Option<&'a str>) -> LiveOutput<'a> {
        LiveOutput {
            api,
            job_id,
            pending: String::new(),
            // So the first output goes out at once.
            last: std::time::Instant::now()
                .checked_sub(Self::INTERVAL)
                .unwrap_or_else(std::time::Instant::now),
            failed: false,
            interval: Self::INTERVAL,
        }
    }

    /// For an operator at a terminal: echo and prompts go out within a few tens of ms.
    pub fn interactive(mut self) -> LiveOutput<'a> {
        self.interval = Duration::from_millis(20);
        self
    }

    /// Queues `text` and sends what is queued unless something was sent less than
    /// [`Self::INTERVAL`] ago. An empty `text` (the hook runner calls it while a hook is quiet)
    /// sends what a burst left queued once the interval has passed, so no output waits for
    /// the next line.
    pub fn push(&mut self, text: &str) {
        if self.job_id.is_none() || self.failed {
            return;
        }
        self.pending.push_str(text);
        if self.last.elapsed() >= self.interval {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        let Some(job_id) = self.job_id else { return };
        if self.pending.is_empty() || self.failed {
            return;
        }
        let body = ferry_manifests::wire::OutputChunk {
            update_id: job_id.to_string(),
            text: std::mem::take(&mut self.pending),
        };
        self.last = std::time::Instant::now();
        let sent = self.api.url("api/v1/device/output").and_then(|url| {
            self.api
                .authorize(self.api.http().post(url.clone()))
                .timeout(Duration::from_secs(5))
                .json(&body)
                .send()
                .map_err(|e| transport_error(&url, e))
                .and_then(|r| check_status(&url, r))
        });
        if let Err(e) = sent {
            // Stop trying for this install: the report will carry the output.
            tracing::debug!("live output not sent: {e}");
            self.failed = true;
        }
    }
}

/// The HTTP client: the pinned CA or the system's, and the client certificate if any.
fn build(
    base: &Url,
    connect: Duration,
    read: Duration,
    server_ca: Option<&[u8]>,
    identity: Option<&ClientAuth>,
) -> Result<Client, Error> {
    // rustls needs a process-wide crypto provider; installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let base_builder = || {
        Client::builder()
            .connect_timeout(connect)
            // In the blocking client this bounds each wait: connect, headers, every body read.
            .timeout(read)
            .user_agent(concat!("ferry-agent/", env!("CARGO_PKG_VERSION")))
    };
    let pem_identity = match identity {
        None => None,
        Some(ClientAuth::Pem(pem)) => Some(reqwest::Identity::from_pem(pem).map_err(|e| {
            Error::Identity(format!(
                "the device certificate and key are not usable: {e}"
            ))
        })?),
        // The handshake is signed in the token: reqwest takes a rustls configuration made
        // here, with the same server verification it would make itself.
        Some(ClientAuth::Token(key)) => {
            let config = token_tls(server_ca, key.clone())?;
            return base_builder()
                .tls_backend_preconfigured(config)
                .build()
                .map_err(Error::HttpClient);
        }
    };
    let builder = || match &pem_identity {
        Some(id) => base_builder().identity(id.clone()),
        None => base_builder(),
    };
    match server_ca {
        Some(pem) => {
            let ca = reqwest::Certificate::from_pem(pem).map_err(Error::ServerCa)?;
            builder().tls_certs_only([ca]).build()
        }
        None => builder().build().or_else(|e| {
            if base.scheme() != "http" {
                return Err(e);
            }
            // No CA certificates on this device: a plain-http server needs none, but an
            // https mirror will fail until they are installed.
            tracing::warn!("cannot load this system's CA certificates; https downloads will fail until they are installed (ca-certificates)");
            builder().tls_certs_only([]).build()
        }),
    }
    .map_err(Error::HttpClient)
}

/// rustls for a key in a token: the pinned CA or the system's verifier, and the certificate.
fn token_tls(
    server_ca: Option<&[u8]>,
    key: std::sync::Arc<rustls::sign::CertifiedKey>,
) -> Result<rustls::ClientConfig, Error> {
    use rustls::pki_types::pem::PemObject;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = |e: rustls::Error| Error::Identity(format!("cannot set up TLS: {e}"));
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls)?;
    let builder = match server_ca {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| Error::Identity(format!("server_ca: {e}")))?;
                roots.add(cert).map_err(tls)?;
            }
            builder.with_root_certificates(roots)
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(
                rustls_platform_verifier::Verifier::new(provider).map_err(tls)?,
            )),
    };
    Ok(builder.with_client_cert_resolver(std::sync::Arc::new(crate::identity::Present(key))))
}

pub fn transport_error(url: &Url, e: reqwest::Error) -> Error {
    // The URL is in the error already; reqwest's text would repeat it.
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    if [
        "UnknownCA",
        "BadCertificate",
        "CertificateUnknown",
        "CertificateRequired",
        "CertificateRevoked",
        "CertificateExpired",
    ]
    .iter()
    .any(|a| message.contains(&format!("received fatal alert: {a}")))
    {
        message.push_str(
            "; the server refused this device's certificate: it is not from the server's device CA or a factory CA the server trusts (device_ca_file), or it expired",
        );
    } else if url.scheme() == "https"
        && ["connection closed", "connection reset", "broken pipe"]
            .iter()
            .any(|m| message.to_lowercase().contains(m))
    {
        // With TLS 1.3 a server checks the client's certificate after the client has sent
        // its request; its refusal (an alert) may be lost when it closes the connection on
        // the unread request.
        message.push_str(
            "; the server closed the connection as the request began: if this repeats, it may have refused this device's certificate (not from the server's device CA or a factory CA it trusts, or expired), or it was stopping",
        );
    }
    if message.contains("InvalidContentType") || message.contains("corrupt message") {
        message.push_str(
            "; the server does not speak TLS on this port: use http:// in server_url, or start the server with --tls-cert",
        );
    }
    Error::Unreachable {
        what: "server",
        url: url.to_string(),
        message,
    }
}

pub fn check_status(url: &Url, resp: Response) -> Result<Response, Error> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let code = status.as_u16();
    let message = match resp.json::<ApiError>() {
        Ok(e) => format!("{} ({})", e.message, e.code),
        Err(_) => status.canonical_reason().unwrap_or("error").to_string(),
    };
    Err(Error::Server {
        url: url.to_string(),
        status: code,
        message,
    })
}

/// `d` scaled by a random factor in `1 ± spread`.
pub fn jittered(d: Duration, spread: f64) -> Duration {
    let mut b = [0u8; 2];
    let _ = getrandom_fill(&mut b);
    let r = u16::from_le_bytes(b) as f64 / u16::MAX as f64; // 0..1
    d.mul_f64(1.0 - spread + 2.0 * spread * r)
}

fn getrandom_fill(b: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(b)
}
