//! Software installed by other means than Ferry, as the configured `[[sources]]` find it
//! (docs/sources.md), reported to the server so fleet-wide questions ("which hosts have
//! openssl older than 3.0.15") have an answer. A check-in carries only the list's digest; the
//! list itself goes when the server's copy differs.

use std::path::Path;

use ferry_manifests::wire::{InventoryPackage, MAX_INVENTORY};

use crate::config::SourceConfig;
use crate::error::{io_err, Error};

/// What every configured source finds, sorted (the digest's order); `None` without sources.
pub fn collect(sources: &[SourceConfig]) -> Result<Option<Vec<InventoryPackage>>, Error> {
    if sources.is_empty() {
        return Ok(None);
    }
    let mut all = Vec::new();
    for source in sources {
        match source {
            SourceConfig::Apt { dpkg_status } => all.extend(apt(dpkg_status)?),
        }
    }
    all.sort();
    all.dedup();
    all.truncate(MAX_INVENTORY);
    Ok(Some(all))
}

fn apt(status: &Path) -> Result<Vec<InventoryPackage>, Error> {
    let text = std::fs::read_to_string(status).map_err(io_err(status))?;
    Ok(installed_debs(&text))
}

/// The installed packages of a dpkg status database (`/var/lib/dpkg/status`, deb822
/// paragraphs): those whose `Status` is `install ok installed`. A package installed for
/// another architecture than the host's is named `NAME:ARCH`, as dpkg names it.
pub fn installed_debs(text: &str) -> Vec<InventoryPackage> {
    let native = text
        .split("\n\n")
        .find_map(|p| {
            field(p, "Package")
                .filter(|n| *n == "dpkg")
                .and(field(p, "Architecture"))
        })
        .map(str::to_string);
    text.split("\n\n")
        .filter(|p| field(p, "Status") == Some("install ok installed"))
        .filter_map(|p| {
            let name = field(p, "Package")?;
            let version = field(p, "Version")?;
            let arch = field(p, "Architecture");
            let name = match (arch, native.as_deref()) {
                (Some(a), Some(n)) if a != n && a != "all" => format!("{name}:{a}"),
                _ => name.to_string(),
            };
            (name.len() <= 256 && version.len() <= 256).then(|| InventoryPackage {
                source: "apt".into(),
                name,
                version: version.to_string(),
            })
        })
        .collect()
}

/// The value of `name:` in a deb822 paragraph (first line only; continuation lines start
/// with a space and are never the field's start).
fn field<'a>(paragraph: &'a str, name: &str) -> Option<&'a str> {
    paragraph.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then(|| value.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: dpkg\nStatus: install ok installed\nPriority: required\nArchitecture: amd64\nVersion: 1.21.22\nDescription: Debian package management system\n This package provides the low-level infrastructure.\n\nPackage: openssl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.0.15-1~deb12u1\n\nPackage: removed-one\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0\n\nPackage: libc6\nStatus: install ok installed\nArchitecture: i386\nVersion: 2.36-9+deb12u9\n\nPackage: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024b-0+deb12u1\n";

    #[test]
    fn installed_packages_are_read_from_the_dpkg_database() {
        let got: Vec<(String, String)> = installed_debs(STATUS)
            .into_iter()
            .map(|p| (p.name, p.version))
            .collect();
        assert_eq!(
            got,
            [
                ("dpkg", "1.21.22"),
                ("openssl", "3.0.15-1~deb12u1"),
                ("libc6:i386", "2.36-9+deb12u9"),
                ("tzdata", "2024b-0+deb12u1"),
            ]
            .map(|(n, v)| (n.to_string(), v.to_string()))
        );
    }

    #[test]
    fn the_digest_changes_with_the_list_and_only_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status");
        std::fs::write(&path, STATUS).unwrap();
        let sources = [SourceConfig::Apt {
            dpkg_status: path.clone(),
        }];
        let a = collect(&sources).unwrap().unwrap();
        let digest = ferry_manifests::wire::inventory_digest(&a);
        assert_eq!(
            digest,
            ferry_manifests::wire::inventory_digest(&collect(&sources).unwrap().unwrap())
        );
        std::fs::write(
            &path,
            STATUS.replace("3.0.15-1~deb12u1", "3.0.16-1~deb12u1"),
        )
        .unwrap();
        let b = collect(&sources).unwrap().unwrap();
        assert_ne!(digest, ferry_manifests::wire::inventory_digest(&b));
        assert_eq!(collect(&[]).unwrap(), None);
        std::fs::remove_file(&path).unwrap();
        let missing = collect(&sources).unwrap_err().to_string();
        assert!(missing.contains("status"), "{missing}");
    }
}
