//! The `apt` source: the host's installed Debian packages (dpkg's status database) and the
//! upgrade APT's package lists offer for each, with its category from the suite that carries
//! it. Both are deb822 files, read as data; no human output of apt is parsed.
//!
//! The candidate is the highest version in the lists for the package's architecture, leaving
//! out suites marked `NotAutomatic` (experimental, backports) unless they also say
//! `ButAutomaticUpgrades`, and nothing for a package on hold, as APT's default policy does.
//! Pins in `/etc/apt/preferences` are not read (docs/sources.md); the install itself is APT's.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use ferry_manifests::manifest::Category;
use ferry_manifests::wire::InventoryPackage;

use crate::config::AptSource;
use crate::error::{io_err, Error};

/// A package dpkg has installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// As dpkg names it: `NAME`, or `NAME:ARCH` for another architecture than the host's.
    pub name: String,
    pub package: String,
    /// The host's architecture for `all` packages, so both match the lists' entries.
    pub arch: String,
    pub version: String,
    /// `hold`: APT never upgrades it on its own.
    pub held: bool,
}

/// The installed packages of a dpkg status database (`/var/lib/dpkg/status`, deb822
/// paragraphs): those whose `Status` ends in `ok installed` (selection `install` or `hold`).
pub fn installed_debs(text: &str) -> Vec<Installed> {
    let native = text
        .split("\n\n")
        .find_map(|p| {
            field(p, "Package")
                .filter(|n| *n == "dpkg")
                .and(field(p, "Architecture"))
        })
        .unwrap_or("")
        .to_string();
    text.split("\n\n")
        .filter_map(|p| {
            let status = field(p, "Status")?;
            let (selection, state) = status.split_once(' ')?;
            if state != "ok installed" || !matches!(selection, "install" | "hold") {
                return None;
            }
            let package = field(p, "Package")?;
            let version = field(p, "Version")?;
            let arch = match field(p, "Architecture") {
                Some("all") | None => native.as_str(),
                Some(a) => a,
            };
            let name = if arch != native && !native.is_empty() {
                format!("{package}:{arch}")
            } else {
                package.to_string()
            };
            (name.len() <= 256 && version.len() <= 256).then(|| Installed {
                name,
                package: package.to_string(),
                arch: arch.to_string(),
                version: version.to_string(),
                held: selection == "hold",
            })
        })
        .collect()
}

/// What a list's `Release` (or `InRelease`) file says about its suite.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Suite {
    pub suite: String,
    pub codename: String,
    /// Packages from it are never candidates on their own (APT priority 1 or 100).
    pub not_automatic: bool,
}

impl Suite {
    /// From the suite's name: `*-security` is `security`, `*-updates` is `bugfix`, anything
    /// else `unknown` (Debian names the suite `stable-security` and the codename
    /// `bookworm-security`; Ubuntu `noble-security` for both).
    pub fn category(&self) -> Category {
        let ends = |tail: &str| self.suite.ends_with(tail) || self.codename.ends_with(tail);
        if ends("-security") {
            Category::Security
        } else if ends("-updates") {
            Category::Bugfix
        } else {
            Category::Unknown
        }
    }
}

/// Reads a `Release` file, or the signed text of an `InRelease` file (the fields come before
/// the signature; checksum lines start with a space and are skipped).
pub fn suite(text: &str) -> Suite {
    let mut s = Suite::default();
    let mut but_automatic = false;
    for line in text.lines() {
        if line.starts_with("-----BEGIN PGP SIGNATURE") {
            break;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "Suite" => s.suite = value.to_string(),
            "Codename" => s.codename = value.to_string(),
            "NotAutomatic" => s.not_automatic = value == "yes",
            "ButAutomaticUpgrades" => but_automatic = value == "yes",
            _ => {}
        }
    }
    s.not_automatic &= !but_automatic;
    s
}

/// The best version seen so far for one installed package, and the suites that carry it.
#[derive(Debug, Clone)]
struct Candidate {
    version: String,
    category: Category,
}

/// Offers the entries of one `Packages` list (deb822, read line by line: a full Debian list
/// is tens of megabytes) to `best`, keyed by (package, architecture).
fn scan_packages(
    reader: impl BufRead,
    native: &str,
    suite: &Suite,
    best: &mut HashMap<(String, String), Option<Candidate>>,
) -> std::io::Result<()> {
    let mut package = String::new();
    let mut version = String::new();
    let mut arch = String::new();
    let mut offer = |package: &mut String, version: &mut String, arch: &mut String| {
        let a = if arch == "all" { native } else { arch.as_str() };
        if let Some(slot) = best.get_mut(&(std::mem::take(package), a.to_string())) {
            let newer = match slot {
                None => true,
                Some(c) => deb_version::compare_versions(version, &c.version).is_gt(),
            };
            if newer {
                *slot = Some(Candidate {
                    version: version.clone(),
                    category: suite.category(),
                });
            } else if let Some(c) = slot.as_mut().filter(|c| c.version == *version) {
                // The same version in several suites: the gravest category wins.
                c.category = c.category.min(suite.category());
            }
        }
        version.clear();
        arch.clear();
    };
    for line in reader.lines() {
        let line = line?;
        if line.is_empty() {
            offer(&mut package, &mut version, &mut arch);
            continue;
        }
        if let Some(v) = line.strip_prefix("Package:") {
            package = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("Version:") {
            version = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("Architecture:") {
            arch = v.trim().to_string();
        }
    }
    offer(&mut package, &mut version, &mut arch);
    Ok(())
}

/// The lists in `dir`: each `*_Packages` file with the suite of the longest `*_Release` /
/// `*_InRelease` file name that prefixes it (the same repository and distribution).
fn lists(dir: &Path) -> Result<Vec<(std::path::PathBuf, Suite)>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        // No lists yet (never refreshed): no upgrades known.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e).into()),
    };
    let mut releases = Vec::new();
    let mut packages = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(prefix) = name
            .strip_suffix("_InRelease")
            .or_else(|| name.strip_suffix("_Release"))
        {
            let path = entry.path();
            let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
            releases.push((format!("{prefix}_"), suite(&text)));
        } else if is_packages_list(&name) {
            packages.push((name, entry.path()));
        }
    }
    packages.sort();
    Ok(packages
        .into_iter()
        .map(|(name, path)| {
            let suite = releases
                .iter()
                .filter(|(prefix, _)| name.starts_with(prefix.as_str()))
                .max_by_key(|(prefix, _)| prefix.len())
                .map(|(_, s)| s.clone())
                .unwrap_or_default();
            (path, suite)
        })
        .collect())
}

/// Compressed forms APT may keep its lists in (`Acquire::GzipIndexes`, Docker's images use
/// lz4); APT's own `apt-helper cat-file` reads them.
const COMPRESSED: &[&str] = &[".lz4", ".gz", ".xz", ".zst", ".bz2", ".lzma"];

/// APT's own reader of its compressed lists.
const APT_HELPER: &str = "/usr/lib/apt/apt-helper";

fn is_packages_list(name: &str) -> bool {
    let base = COMPRESSED
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .unwrap_or(name);
    base.ends_with("_Packages")
}

/// Offers one list's entries to `best`: read directly, or through `apt-helper cat-file`
/// when compressed.
fn scan_list(
    path: &Path,
    native: &str,
    suite: &Suite,
    best: &mut HashMap<(String, String), Option<Candidate>>,
) -> Result<(), Error> {
    if path.to_string_lossy().ends_with("_Packages") {
        let file = std::fs::File::open(path).map_err(io_err(path))?;
        return scan_packages(BufReader::new(file), native, suite, best)
            .map_err(|e| io_err(path)(e).into());
    }
    let mut child = std::process::Command::new(APT_HELPER)
        .arg("cat-file")
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(io_err(Path::new(APT_HELPER)))?;
    let scanned = match child.stdout.take() {
        Some(out) => scan_packages(BufReader::new(out), native, suite, best),
        None => Ok(()),
    };
    let status = child.wait().map_err(io_err(Path::new(APT_HELPER)))?;
    scanned.map_err(io_err(path))?;
    if !status.success() {
        return Err(io_err(path)(std::io::Error::other(format!(
            "{APT_HELPER} cat-file could not read it ({status})"
        )))
        .into());
    }
    Ok(())
}

/// What `read` depends on, in a few bytes: the size and time of change of the status
/// database and of every file in the lists directory (APT replaces a list whole, dpkg its
/// status). Equal fingerprints read the same.
pub fn fingerprint(source: &AptSource) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt as _;
    let stamp =
        |m: &std::fs::Metadata| format!("{}.{}.{}.{}", m.ino(), m.len(), m.mtime(), m.mtime_nsec());
    let mut parts = vec![format!(
        "{}={}",
        source.dpkg_status.display(),
        stamp(&std::fs::metadata(&source.dpkg_status)?)
    )];
    match std::fs::read_dir(&source.lists_dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                if let Some(m) = e.metadata().ok().filter(|m| m.is_file()) {
                    parts.push(format!("{}={}", e.file_name().to_string_lossy(), stamp(&m)));
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    parts.sort();
    use sha2::Digest as _;
    Ok(hex::encode(sha2::Sha256::digest(
        parts.join("\n").as_bytes(),
    )))
}

/// The installed packages, each with the upgrade the lists offer (if any) and its category.
pub fn read(source: &AptSource) -> Result<Vec<InventoryPackage>, Error> {
    let status =
        std::fs::read_to_string(&source.dpkg_status).map_err(io_err(&source.dpkg_status))?;
    let installed = installed_debs(&status);
    let native = native_arch(&installed);
    let mut best: HashMap<(String, String), Option<Candidate>> = installed
        .iter()
        .filter(|p| !p.held)
        .map(|p| ((p.package.clone(), p.arch.clone()), None))
        .collect();
    for (path, suite) in lists(&source.lists_dir)? {
        if suite.not_automatic {
            continue;
        }
        scan_list(&path, &native, &suite, &mut best)?;
    }
    Ok(offers(installed, &best))
}

/// The host's architecture: that of the packages named without one.
fn native_arch(installed: &[Installed]) -> String {
    installed
        .iter()
        .find(|p| p.name == p.package)
        .map(|p| p.arch.clone())
        .unwrap_or_default()
}

fn offers(
    installed: Vec<Installed>,
    best: &HashMap<(String, String), Option<Candidate>>,
) -> Vec<InventoryPackage> {
    installed
        .into_iter()
        .map(|p| {
            let upgrade = best
                .get(&(p.package, p.arch))
                .and_then(Option::as_ref)
                .filter(|c| deb_version::compare_versions(&c.version, &p.version).is_gt())
                .filter(|c| c.version.len() <= 256);
            InventoryPackage {
                source: "apt".into(),
                name: p.name,
                version: p.version,
                latest: upgrade.map(|c| c.version.clone()),
                category: upgrade.map(|c| c.category),
                release: None,
            }
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
pub(crate) mod tests {
    use super::*;

    pub const STATUS: &str = "Package: dpkg\nStatus: install ok installed\nPriority: required\nArchitecture: amd64\nVersion: 1.21.22\nDescription: Debian package management system\n This package provides the low-level infrastructure.\n\nPackage: openssl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.0.15-1~deb12u1\n\nPackage: removed-one\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0\n\nPackage: libc6\nStatus: install ok installed\nArchitecture: i386\nVersion: 2.36-9+deb12u9\n\nPackage: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024b-0+deb12u1\n\nPackage: kept\nStatus: hold ok installed\nArchitecture: amd64\nVersion: 1.0\n";

    #[test]
    fn installed_packages_are_read_from_the_dpkg_database() {
        let got: Vec<(String, String, bool)> = installed_debs(STATUS)
            .into_iter()
            .map(|p| (p.name, p.version, p.held))
            .collect();
        assert_eq!(
            got,
            [
                ("dpkg", "1.21.22", false),
                ("openssl", "3.0.15-1~deb12u1", false),
                ("libc6:i386", "2.36-9+deb12u9", false),
                ("tzdata", "2024b-0+deb12u1", false),
                ("kept", "1.0", true),
            ]
            .map(|(n, v, h)| (n.to_string(), v.to_string(), h))
        );
    }

    #[test]
    fn a_suite_names_the_category() {
        let debian = suite("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nLabel: Debian-Security\nSuite: stable-security\nCodename: bookworm-security\nSHA256:\n abc 12 main/binary-amd64/Packages\n-----BEGIN PGP SIGNATURE-----\nSuite: fake\n");
        assert_eq!(debian.codename, "bookworm-security");
        assert_eq!(debian.suite, "stable-security");
        assert_eq!(debian.category(), Category::Security);
        let ubuntu = suite("Origin: Ubuntu\nSuite: noble-updates\nCodename: noble\n");
        assert_eq!(ubuntu.category(), Category::Bugfix);
        let main = suite("Suite: stable\nCodename: bookworm\n");
        assert_eq!(main.category(), Category::Unknown);
        let backports =
            suite("Suite: stable-backports\nNotAutomatic: yes\nButAutomaticUpgrades: yes\n");
        assert!(!backports.not_automatic);
        assert!(suite("Suite: experimental\nNotAutomatic: yes\n").not_automatic);
    }

    #[test]
    fn the_highest_version_in_the_lists_is_the_upgrade_with_its_suites_category() {
        let dir = tempfile::tempdir().unwrap();
        let status = dir.path().join("status");
        std::fs::write(&status, STATUS).unwrap();
        let lists = dir.path().join("lists");
        std::fs::create_dir(&lists).unwrap();
        let w = |name: &str, text: &str| std::fs::write(lists.join(name), text).unwrap();
        w(
            "deb.example_debian_dists_bookworm_InRelease",
            "Suite: stable\nCodename: bookworm\n",
        );
        w(
            "deb.example_debian_dists_bookworm_main_binary-amd64_Packages",
            "Package: openssl\nVersion: 3.0.15-1~deb12u1\nArchitecture: amd64\n\nPackage: tzdata\nVersion: 2025a-0+deb12u1\nArchitecture: all\n\nPackage: kept\nVersion: 2.0\nArchitecture: amd64\n",
        );
        w(
            "security.example_debian-security_dists_bookworm-security_InRelease",
            "Suite: stable-security\nCodename: bookworm-security\n",
        );
        w(
            "security.example_debian-security_dists_bookworm-security_main_binary-amd64_Packages",
            "Package: openssl\nVersion: 3.0.17-1~deb12u2\nArchitecture: amd64\nDescription: x\n long\n\nPackage: openssl\nVersion: 3.0.16-1~deb12u1\nArchitecture: amd64\n\nPackage: libc6\nVersion: 2.36-9+deb12u10\nArchitecture: amd64\n",
        );
        w(
            "deb.example_debian_dists_experimental_Release",
            "Suite: experimental\nNotAutomatic: yes\n",
        );
        w(
            "deb.example_debian_dists_experimental_main_binary-amd64_Packages",
            "Package: openssl\nVersion: 3.5.0-1\nArchitecture: amd64\n",
        );
        let source = AptSource {
            dpkg_status: status,
            lists_dir: lists,
            refresh_interval_secs: 0,
        };
        let got: Vec<(String, Option<String>, Option<Category>)> = read(&source)
            .unwrap()
            .into_iter()
            .map(|p| (p.name, p.latest, p.category))
            .collect();
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            got,
            [
                ("dpkg".to_string(), None, None),
                (
                    "openssl".into(),
                    s("3.0.17-1~deb12u2"),
                    Some(Category::Security)
                ),
                // An amd64 entry is no upgrade for the i386 package.
                ("libc6:i386".into(), None, None),
                (
                    "tzdata".into(),
                    s("2025a-0+deb12u1"),
                    Some(Category::Unknown)
                ),
                // Held: never offered.
                ("kept".into(), None, None),
            ]
        );
    }

    #[test]
    fn a_version_in_two_suites_takes_the_gravest_category() {
        let mut best = HashMap::from([(("foo".to_string(), "amd64".to_string()), None)]);
        let list = "Package: foo\nVersion: 1.1\nArchitecture: amd64\n";
        let main = suite("Suite: stable\n");
        let security = suite("Suite: stable-security\n");
        scan_packages(list.as_bytes(), "amd64", &main, &mut best).unwrap();
        scan_packages(list.as_bytes(), "amd64", &security, &mut best).unwrap();
        let c = best.values().next().unwrap().clone().unwrap();
        assert_eq!(
            (c.version.as_str(), c.category),
            ("1.1", Category::Security)
        );
    }
}
