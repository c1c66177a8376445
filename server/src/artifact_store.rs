//! Where artifacts and deltas are kept (docs/operations.md, "Object storage"): the data
//! directory (the default), or S3-compatible object storage (`artifact_store = "s3://…"`)
//! through `object_store`, with the data directory as this instance's cache of it.
//!
//! Every instance writes what it receives (an upload, a delta it built) to the store, and
//! reads what it lacks from it once, into its cache: instances share no disk. Devices download
//! through the server as always (Range, resume, from the cache), or, with
//! `presigned_url_secs`, from a URL of the store signed for a short while (the device's
//! credential never goes there).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer as _;
use object_store::ObjectStoreExt as _;
use tokio::io::AsyncWriteExt as _;

/// `artifact_store` and its `[s3]` settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStoreConfig {
    pub bucket: String,
    /// Prefix of every object, without slashes at either end ("" for none).
    pub prefix: String,
    /// An S3-compatible service's URL (path-style requests); `None`: AWS S3 of `region`.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Access key id, secret access key, session token: from `credentials_file`; `None`:
    /// the usual environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, …).
    pub credentials: Option<Credentials>,
    /// Devices download from URLs signed for this long instead of through the server.
    pub presign: Option<Duration>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// `s3://BUCKET[/PREFIX]`: the bucket and the prefix.
pub fn parse_url(text: &str) -> Result<(String, String), String> {
    let rest = text.strip_prefix("s3://").ok_or_else(|| {
        format!("artifact_store {text:?}: give s3://BUCKET[/PREFIX] (or leave it out to keep artifacts in data_dir)")
    })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty()
        || !bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        return Err(format!(
            "artifact_store {text:?}: the bucket name is lower-case letters, digits, '-' and '.'"
        ));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object storage: {0}")]
    Object(#[from] object_store::Error),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

pub enum ArtifactStore {
    /// The data directory holds everything.
    Local,
    Object(Box<Objects>),
}

pub struct Objects {
    s3: Arc<object_store::aws::AmazonS3>,
    prefix: String,
    presign: Option<Duration>,
    /// One fetch of a name at a time; the others wait for it.
    fetching: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ArtifactStore {
    pub fn open(config: Option<&ObjectStoreConfig>) -> Result<ArtifactStore, StoreError> {
        let Some(c) = config else {
            return Ok(ArtifactStore::Local);
        };
        let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(&c.bucket);
        if let Some(region) = &c.region {
            b = b.with_region(region);
        }
        if let Some(endpoint) = &c.endpoint {
            b = b
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if let Some(cred) = &c.credentials {
            b = b
                .with_access_key_id(&cred.access_key_id)
                .with_secret_access_key(&cred.secret_access_key);
            if let Some(t) = &cred.session_token {
                b = b.with_token(t);
            }
        }
        Ok(ArtifactStore::Object(Box::new(Objects {
            s3: Arc::new(b.build()?),
            prefix: c.prefix.clone(),
            presign: c.presign,
            fetching: Default::default(),
        })))
    }

    pub fn is_object_store(&self) -> bool {
        matches!(self, ArtifactStore::Object(_))
    }

    /// After `local` (a file of the data directory: `artifacts/NAME`, `deltas/ITEM/…`) was
    /// written whole: the store gets it too. `key` is its path under the data directory.
    pub async fn put(&self, key: &str, local: &Path) -> Result<(), StoreError> {
        let ArtifactStore::Object(o) = self else {
            return Ok(());
        };
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(io("cannot open", local))?;
        let mut writer = object_store::buffered::BufWriter::new(
            Arc::clone(&o.s3) as Arc<dyn object_store::ObjectStore>,
            o.path(key),
        );
        tokio::io::copy(&mut file, &mut writer)
            .await
            .map_err(io("cannot upload", local))?;
        writer
            .shutdown()
            .await
            .map_err(io("cannot upload", local))?;
        Ok(())
    }

    /// Makes sure `local` (`key` under the data directory) is here: fetched from the store
    /// once if this instance lacks it. False when neither has it.
    pub async fn fetch(&self, key: &str, local: &Path) -> Result<bool, StoreError> {
        if tokio::fs::try_exists(local).await.unwrap_or(false) {
            return Ok(true);
        }
        let ArtifactStore::Object(o) = self else {
            return Ok(false);
        };
        let lock = {
            let mut f = o.fetching.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(f.entry(key.to_string()).or_default())
        };
        let _held = lock.lock().await;
        if tokio::fs::try_exists(local).await.unwrap_or(false) {
            return Ok(true);
        }
        let got = match o.s3.get(&o.path(key)).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        if let Some(dir) = local.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(io("cannot create", dir))?;
        }
        let part = local.with_extension("fetching");
        let mut out = tokio::fs::File::create(&part)
            .await
            .map_err(io("cannot create", &part))?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk?)
                .await
                .map_err(io("cannot write", &part))?;
        }
        out.sync_all().await.map_err(io("cannot write", &part))?;
        drop(out);
        tokio::fs::rename(&part, local)
            .await
            .map_err(io("cannot rename", &part))?;
        o.fetching
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        Ok(true)
    }

    /// A URL of the store a device may download `key` from for a short while, when so
    /// configured.
    pub async fn presigned(&self, key: &str) -> Result<Option<String>, StoreError> {
        let ArtifactStore::Object(o) = self else {
            return Ok(None);
        };
        let Some(expires) = o.presign else {
            return Ok(None);
        };
        let url =
            o.s3.signed_url(object_store::signer::Method::GET, &o.path(key), expires)
                .await?;
        Ok(Some(url.to_string()))
    }
}

impl Objects {
    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_url_names_a_bucket_and_a_prefix() {
        assert_eq!(
            parse_url("s3://ferry-artifacts/prod/eu/").unwrap(),
            ("ferry-artifacts".into(), "prod/eu".into())
        );
        assert_eq!(parse_url("s3://b").unwrap(), ("b".into(), String::new()));
        assert!(parse_url("/var/lib/ferry").unwrap_err().contains("s3://"));
        assert!(parse_url("s3://Upper/x").is_err());
        assert!(parse_url("s3:///x").is_err());
    }

    #[test]
    fn credentials_never_show_the_secret() {
        let c = Credentials {
            access_key_id: "AKIA".into(),
            secret_access_key: "very-secret".into(),
            session_token: None,
        };
        assert!(!format!("{c:?}").contains("very-secret"));
    }
}
