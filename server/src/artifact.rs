//! A stored artifact read as the tar stream inside it, and checked as devices check it
//! ([`ferry_manifests::tarball`]): at publish, and again while a delta is built from it.

use std::io::{self, Read};
use std::path::Path;

use ferry_manifests::manifest::Compression;
use ferry_manifests::tarball::{check_tar, Discard, TarballError};
use ferry_manifests::Manifest;

/// Opens `artifact` and decompresses it as `compression` says.
pub fn tar_stream(artifact: &Path, compression: Compression) -> io::Result<Box<dyn Read>> {
    let file = io::BufReader::with_capacity(256 * 1024, std::fs::File::open(artifact)?);
    Ok(match compression {
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(file)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(file)?),
    })
}

/// Whether `artifact` holds exactly the files and links `manifest` lists, as a device would find when
/// it unpacks it (blocking: run it off the async threads).
pub fn check(artifact: &Path, manifest: &Manifest) -> Result<(), TarballError> {
    let stream = tar_stream(artifact, manifest.artifact.compression)
        .map_err(|e| TarballError::Corrupt(e.to_string()))?;
    check_tar(stream, &manifest.files, &manifest.links, &mut Discard)
}
