//! The `containers` source: the host's running containers (Podman or Docker), each with the
//! tag its image runs and the newest tag of the same shape its registry offers (docs/sources.md).
//!
//! Image references, which tags count as newer, the registry's token handshake and the
//! recreate script are plain functions over text, unit-tested; `read` and `tags` are the
//! I/O around them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use ferry_manifests::manifest::Category;
use ferry_manifests::wire::InventoryPackage;

use crate::config::ContainersSource;
use crate::error::Error;

/// The name the source's software carries in the fleet.
pub const SOURCE: &str = "containers";

/// How long the engine's `ps` may take.
const PS_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one registry request may take.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(20);

/// An image reference as an engine shows it (`registry/repository:tag[@digest]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `docker.io`, `ghcr.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// `library/nginx`, `acme/web`.
    pub repository: String,
    pub tag: Option<String>,
}

impl ImageRef {
    /// The reference without its tag: what a pull of another tag names.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

/// Reads an image reference the way Docker and Podman do: a first component with a `.` or a
/// `:`, or `localhost`, is a registry; otherwise the image is on Docker Hub (`library/` for
/// a one-part name). A digest (`@sha256:…`) is dropped: tags are what this source compares.
pub fn parse_ref(text: &str) -> Option<ImageRef> {
    let text = text.split('@').next()?.trim();
    if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (path, tag) = match text.rsplit_once(':') {
        Some((p, t)) if !t.contains('/') => (p, Some(t.to_string())),
        _ => (text, None),
    };
    let (registry, repository) = match path.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        Some(_) => ("docker.io".to_string(), path.to_string()),
        None => ("docker.io".to_string(), format!("library/{path}")),
    };
    if repository.is_empty() {
        return None;
    }
    Some(ImageRef {
        registry,
        repository,
        tag,
    })
}

/// The tags' "shape": a leading `v` or not, how many dot-separated numbers, and whatever
/// follows them (`-alpine`); only a tag of the same shape is an upgrade of another (`1.25`
/// → `1.27`, not `1.25` → `1.27.1-alpine` or `latest`).
fn shape(tag: &str) -> Option<(bool, usize, String)> {
    let v = tag.starts_with('v');
    let rest = tag.strip_prefix('v').unwrap_or(tag);
    let numeric_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (numbers, suffix) = rest.split_at(numeric_end);
    if numbers.is_empty()
        || numbers.starts_with('.')
        || numbers.ends_with('.')
        || numbers.contains("..")
    {
        return None;
    }
    // The suffix, with any digits in it taken as part of the shape's text.
    Some((v, numbers.split('.').count(), suffix.to_string()))
}

/// The newest tag of `current`'s shape that sorts after it (dpkg's order, which orders
/// dotted numbers); `None` for a tag that is not a version (`latest`) or when none is newer.
pub fn newest_tag(current: &str, tags: &[String]) -> Option<String> {
    let want = shape(current)?;
    tags.iter()
        .filter(|t| shape(t).as_ref() == Some(&want))
        .filter(|t| deb_version::compare_versions(t, current) == std::cmp::Ordering::Greater)
        .max_by(|a, b| deb_version::compare_versions(a, b))
        .cloned()
}

/// A running container: its name and its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub name: String,
    pub image: String,
}

/// The engine's `ps` output: Podman prints one JSON array (`--format json`), Docker one
/// object per line (`--format '{{json .}}'`); `Names` is a list in the first and a
/// comma-separated string in the second.
pub fn parse_ps(text: &str) -> Result<Vec<Running>, String> {
    let trimmed = text.trim();
    let values: Vec<serde_json::Value> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|e| format!("not the engine's JSON: {e}"))?
    } else {
        trimmed
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("not the engine's JSON: {e}"))?
    };
    let mut out = Vec::new();
    for v in values {
        let name = match &v["Names"] {
            serde_json::Value::Array(a) => a.first().and_then(|n| n.as_str()).map(String::from),
            serde_json::Value::String(s) => s.split(',').next().map(String::from),
            _ => None,
        };
        let image = v["Image"].as_str().map(String::from);
        if let (Some(name), Some(image)) = (name, image) {
            out.push(Running { name, image });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The running containers, from the engine.
pub fn running(source: &ContainersSource) -> Result<Vec<Running>, Error> {
    let format = if source.engine == "docker" {
        "{{json .}}"
    } else {
        "json"
    };
    // The engine's warnings (stderr) would break its JSON: they are read only on failure.
    let ran = super::run_bounded(
        std::process::Command::new("/bin/sh").args([
            "-c",
            "exec \"$@\" 2>/dev/null",
            "sh",
            &source.engine,
            "ps",
            "--format",
            format,
        ]),
        PS_TIMEOUT,
        super::command::MAX_OUTPUT,
    )
    .map_err(|e| failed(format!("cannot run `{} ps`: {e}", source.engine)))?;
    if !ran.ok {
        let why = super::run_bounded(
            std::process::Command::new(&source.engine).args(["ps", "--format", format]),
            PS_TIMEOUT,
            4096,
        )
        .map(|r| r.text)
        .unwrap_or_default();
        return Err(failed(format!(
            "`{} ps` {}: {}",
            source.engine,
            ran.status,
            why.trim()
        )));
    }
    parse_ps(&ran.text).map_err(failed)
}

fn failed(why: String) -> Error {
    Error::Source {
        name: SOURCE.into(),
        why,
    }
}

/// The tags each image's repository had when last asked (`containers-tags.json`).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct TagCache {
    /// By image name (`registry/repository`).
    pub tags: BTreeMap<String, Vec<String>>,
}

impl TagCache {
    pub fn load(path: &Path) -> TagCache {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
}

/// The running containers as inventory, each with the newest tag the cache knows; refreshes
/// the cache first when due (`manual`, or `refresh_interval_secs` since the last).
pub fn read(
    source: &ContainersSource,
    state_dir: &Path,
    manual: bool,
) -> Result<Vec<InventoryPackage>, Error> {
    let running = running(source)?;
    let cache_path = state_dir.join("containers-tags.json");
    let mut cache = TagCache::load(&cache_path);
    let stamp = state_dir.join("containers-refreshed");
    let last = std::fs::metadata(&stamp).and_then(|m| m.modified()).ok();
    let images: Vec<ImageRef> = running.iter().filter_map(|r| parse_ref(&r.image)).collect();
    let unknown = images.iter().any(|i| !cache.tags.contains_key(&i.name()));
    if super::refresh_due(
        last,
        SystemTime::now(),
        source.refresh_interval_secs,
        manual,
    ) || unknown
    {
        let mut asked = std::collections::BTreeSet::new();
        for image in &images {
            if !asked.insert(image.name()) {
                continue;
            }
            match tags(source, image) {
                Ok(t) => {
                    cache.tags.insert(image.name(), t);
                }
                Err(why) => tracing::warn!(
                    image = %image.name(),
                    "cannot list the registry's tags ({why}); the newest known is kept"
                ),
            }
        }
        let _ = std::fs::write(&stamp, b"");
        if let Ok(bytes) = serde_json::to_vec(&cache) {
            let _ = std::fs::write(&cache_path, bytes);
        }
    }
    Ok(inventory(&running, &cache))
}

/// The containers as inventory: name, the tag it runs (`untagged` without one), and the
/// newest tag of the same shape, if newer.
pub fn inventory(running: &[Running], cache: &TagCache) -> Vec<InventoryPackage> {
    running
        .iter()
        .map(|r| {
            let image = parse_ref(&r.image);
            let tag = image
                .as_ref()
                .and_then(|i| i.tag.clone())
                .unwrap_or_else(|| "untagged".into());
            let latest = image
                .as_ref()
                .and_then(|i| cache.tags.get(&i.name()))
                .and_then(|tags| newest_tag(&tag, tags));
            InventoryPackage {
                source: SOURCE.into(),
                name: r.name.clone(),
                version: tag,
                category: latest.as_ref().map(|_| Category::Unknown),
                release: None,
                latest,
            }
        })
        .collect()
}

/// The registry's base URL: plain HTTP only for the insecure registries; Docker Hub's API
/// host for `docker.io`.
pub fn registry_base(registry: &str, insecure: &[String]) -> String {
    let host = if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    };
    let scheme = if insecure.iter().any(|r| r == registry) {
        "http"
    } else {
        "https"
    };
    format!("{scheme}://{host}")
}

/// The token endpoint a registry's `WWW-Authenticate: Bearer realm="…",service="…",scope="…"`
/// names, with its query: anonymous pull access, as an engine asks for a public image.
pub fn token_url(www_authenticate: &str) -> Option<String> {
    let rest = www_authenticate.trim().strip_prefix("Bearer ")?;
    let mut realm = None;
    let mut query = Vec::new();
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        let v = v.trim_matches('"');
        match k {
            "realm" => realm = Some(v.to_string()),
            "service" | "scope" => query.push((k.to_string(), v.to_string())),
            _ => {}
        }
    }
    let mut url = url::Url::parse(&realm?).ok()?;
    for (k, v) in query {
        url.query_pairs_mut().append_pair(&k, &v);
    }
    Some(url.to_string())
}

/// The repository's tags (`GET /v2/NAME/tags/list`), with the anonymous token handshake when
/// the registry asks for one.
pub fn tags(source: &ContainersSource, image: &ImageRef) -> Result<Vec<String>, String> {
    let http = reqwest::blocking::Client::builder()
        .timeout(REGISTRY_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!(
        "{}/v2/{}/tags/list?n=10000",
        registry_base(&image.registry, &source.insecure_registries),
        image.repository
    );
    let mut resp = http.get(&url).send().map_err(|e| format!("{url}: {e}"))?;
    if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
        let challenge = resp
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .and_then(token_url)
            .ok_or_else(|| format!("{url}: 401 without a token endpoint (a private registry?)"))?;
        let token: serde_json::Value = http
            .get(&challenge)
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.json())
            .map_err(|e| format!("the registry's token endpoint: {e}"))?;
        let token = token["token"]
            .as_str()
            .or_else(|| token["access_token"].as_str())
            .ok_or("the registry's token endpoint gave no token")?
            .to_string();
        resp = http
            .get(&url)
            .bearer_auth(token)
            .send()
            .map_err(|e| format!("{url}: {e}"))?;
    }
    if !resp.status().is_success() {
        return Err(format!("{url}: {}", resp.status()));
    }
    let body: serde_json::Value = resp.json().map_err(|e| format!("{url}: {e}"))?;
    Ok(body["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default())
}

/// A container name as the engines allow it: nothing in it reaches the shell unquoted.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// What a recreated container must keep, as `podman inspect --format` prints it: network
/// mode and networks, mounts, published ports, restart policy and health check.
const SETTINGS: &str = "{{.HostConfig.NetworkMode}}|{{range $k, $v := .NetworkSettings.Networks}}{{$k}},{{end}}|{{range .Mounts}}{{.Type}}:{{.Destination}},{{end}}|{{.HostConfig.PortBindings}}|{{.HostConfig.RestartPolicy.Name}}|{{.Config.Healthcheck}}";

/// How long a recreated container must keep running before the old one is removed.
pub const SETTLE_SECS: u64 = 3;

/// The Podman script that moves container `name` to `image` (a full reference): pull, stop,
/// keep the old container under another name, clone it with the new image, and start the
/// clone only if it kept every setting in [`SETTINGS`] (Podman's clone drops some:
/// podman#13713, #15242) and keep it only if it still runs [`SETTLE_SECS`] later; otherwise
/// the old container comes back as it was and the script fails saying why.
pub fn recreate_script(name: &str, image: &str, insecure: bool) -> String {
    let q = super::shell_quote;
    let old = format!("{name}-ferry-previous");
    let tls = if insecure { " --tls-verify=false" } else { "" };
    format!(
        "echo \"== {name}: {image}\"\n\
         F={settings}\n\
         podman pull{tls} {img} || exit 1\n\
         before=$(podman inspect --format \"$F\" {n}) || exit 1\n\
         podman stop -t 30 {n} >/dev/null || exit 1\n\
         podman rename {n} {o} || {{ podman start {n} >/dev/null; exit 1; }}\n\
         restore() {{ echo \"{name}: $1; the previous container runs again\"; podman rm -f {n} >/dev/null 2>&1; podman rename {o} {n} && podman start {n} >/dev/null; exit 1; }}\n\
         podman container clone {o} {n} {img} >/dev/null || restore \"podman could not clone it\"\n\
         after=$(podman inspect --format \"$F\" {n})\n\
         [ \"$before\" = \"$after\" ] || restore \"the clone did not keep its settings (was $before, became $after)\"\n\
         podman start {n} >/dev/null || restore \"the new container did not start\"\n\
         sleep {settle}\n\
         [ \"$(podman inspect --format '{{{{.State.Running}}}}' {n})\" = true ] || restore \"the new container stopped within {settle} s of its start\"\n\
         podman rm {o} >/dev/null\n\
         echo \"{name} now runs {image}\"\n",
        settings = q(SETTINGS),
        settle = SETTLE_SECS,
        img = q(image),
        n = q(name),
        o = q(&old),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_are_read_as_the_engines_read_them() {
        let r = parse_ref("127.0.0.1:5000/app:1.0").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "app", Some("1.0"))
        );
        let r = parse_ref("nginx").unwrap();
        assert_eq!(r.name(), "docker.io/library/nginx");
        assert_eq!(r.tag, None);
        let r = parse_ref("acme/web:2.1@sha256:abcd").unwrap();
        assert_eq!(r.name(), "docker.io/acme/web");
        assert_eq!(r.tag.as_deref(), Some("2.1"));
        let r = parse_ref("localhost/app").unwrap();
        assert_eq!((r.registry.as_str(), r.tag), ("localhost", None));
        let r = parse_ref("ghcr.io/org/tool:v3.2.0").unwrap();
        assert_eq!(r.registry, "ghcr.io");
        assert_eq!(parse_ref(""), None);
        assert_eq!(parse_ref("a b"), None);
    }

    #[test]
    fn only_a_newer_tag_of_the_same_shape_is_an_upgrade() {
        let tags: Vec<String> = [
            "1.25",
            "1.26",
            "1.27",
            "1.27.1",
            "1.27-alpine",
            "latest",
            "1.9",
            "2.0-rc1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(newest_tag("1.25", &tags).as_deref(), Some("1.27"));
        assert_eq!(
            newest_tag("1.25-alpine", &tags).as_deref(),
            Some("1.27-alpine")
        );
        assert_eq!(newest_tag("1.27", &tags), None);
        assert_eq!(newest_tag("latest", &tags), None, "not a version");
        assert_eq!(newest_tag("1.26.0", &tags).as_deref(), Some("1.27.1"));
        let v: Vec<String> = vec!["v1.2.0".into(), "v1.10.0".into(), "1.11.0".into()];
        assert_eq!(newest_tag("v1.2.0", &v).as_deref(), Some("v1.10.0"));
    }

    #[test]
    fn podman_and_docker_ps_output_are_both_read() {
        let podman = r#"[{"Names":["web"],"Image":"127.0.0.1:5000/app:1.0","State":"running"},
                         {"Names":["db"],"Image":"docker.io/library/postgres:16"}]"#;
        let r = parse_ps(podman).unwrap();
        assert_eq!(r[0].name, "db");
        assert_eq!(r[1].image, "127.0.0.1:5000/app:1.0");
        let docker = "{\"Names\":\"web\",\"Image\":\"nginx:1.25\"}\n{\"Names\":\"a,b\",\"Image\":\"redis\"}\n";
        let r = parse_ps(docker).unwrap();
        assert_eq!(r[0].name, "a");
        assert_eq!(r[1].image, "nginx:1.25");
        assert!(parse_ps("Error: no such engine").is_err());
        assert_eq!(parse_ps("[]").unwrap(), vec![]);
    }

    #[test]
    fn the_inventory_names_each_container_with_its_tag_and_upgrade() {
        let running = vec![
            Running {
                name: "web".into(),
                image: "127.0.0.1:5000/app:1.0".into(),
            },
            Running {
                name: "cache".into(),
                image: "redis".into(),
            },
        ];
        let mut cache = TagCache::default();
        cache.tags.insert(
            "127.0.0.1:5000/app".into(),
            vec!["1.0".into(), "1.1".into()],
        );
        let inv = inventory(&running, &cache);
        assert_eq!(inv[0].name, "web");
        assert_eq!(inv[0].version, "1.0");
        assert_eq!(inv[0].latest.as_deref(), Some("1.1"));
        assert_eq!(inv[0].category, Some(Category::Unknown));
        assert_eq!(inv[1].version, "untagged");
        assert_eq!(inv[1].latest, None);
        assert_eq!(inv[1].category, None);
    }

    #[test]
    fn a_registry_s_token_challenge_becomes_its_token_url() {
        let url = token_url(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        )
        .unwrap();
        assert_eq!(
            url,
            "https://auth.docker.io/token?service=registry.docker.io&scope=repository%3Alibrary%2Fnginx%3Apull"
        );
        assert_eq!(token_url("Basic realm=\"x\""), None);
        assert_eq!(
            registry_base("docker.io", &[]),
            "https://registry-1.docker.io"
        );
        assert_eq!(
            registry_base("127.0.0.1:5000", &["127.0.0.1:5000".into()]),
            "http://127.0.0.1:5000"
        );
    }

    #[test]
    fn the_recreate_script_quotes_and_restores() {
        assert!(valid_name("web-1.a_b"));
        assert!(!valid_name("-web"));
        assert!(!valid_name("web;reboot"));
        let s = recreate_script("web", "127.0.0.1:5000/app:1.1", true);
        assert!(s.contains("podman pull --tls-verify=false '127.0.0.1:5000/app:1.1'"));
        assert!(s.contains(
            "podman container clone 'web-ferry-previous' 'web' '127.0.0.1:5000/app:1.1'"
        ));
        assert!(s.contains("{{.HostConfig.NetworkMode}}"));
        assert!(s.contains("podman rename 'web-ferry-previous' 'web'"));
    }
}
