//! A real Debian system for the APT tests: the Debian root the package test makes
//! (`FERRY_TEST_ROOTFS`, debootstrap of bookworm; scripts/test makes it) under a copy-on-write
//! overlay per test, entered with chroot in a private mount namespace; and a real APT
//! repository made with Debian's own tools (dpkg-deb, apt-ftparchive, a throw-away GnuPG key),
//! served on loopback.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::run;

/// The Debian root's path; fails loudly when it is missing.
fn rootfs() -> PathBuf {
    let root = std::env::var_os("FERRY_TEST_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/ferry-test/bookworm"));
    assert!(
        root.join("usr/bin/apt-get").exists(),
        "no Debian root at {} (scripts/test makes it with debootstrap; or set FERRY_TEST_ROOTFS)",
        root.display()
    );
    root
}

/// A Debian system of its own for one test: changes land in `upper`, the shared root stays
/// as it is.
pub struct Debian {
    upper: PathBuf,
    work: PathBuf,
    merged: PathBuf,
    lower: PathBuf,
    /// Host directories seen at the same path inside (the test's directory, the binaries).
    shared: Vec<PathBuf>,
}

impl Debian {
    /// A Debian system under `dir`, with `shared` directories visible inside at their paths.
    pub fn new(dir: &Path, shared: &[&Path]) -> Debian {
        let d = Debian {
            upper: dir.join("debian-upper"),
            work: dir.join("debian-work"),
            merged: dir.join("debian-root"),
            lower: rootfs(),
            shared: shared
                .iter()
                .map(|p| p.canonicalize().expect("a shared directory"))
                .collect(),
        };
        for p in [&d.upper, &d.work, &d.merged] {
            std::fs::create_dir_all(p).unwrap();
        }
        d
    }

    /// Writes a file into the system (through its upper layer).
    pub fn write(&self, path: &str, contents: impl AsRef<[u8]>) {
        let p = self.upper.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }

    /// Reads a file of the system as it is now.
    pub fn read(&self, path: &str) -> String {
        let rel = path.trim_start_matches('/');
        let upper = self.upper.join(rel);
        std::fs::read_to_string(if upper.exists() {
            upper
        } else {
            self.lower.join(rel)
        })
        .unwrap_or_default()
    }

    /// `cmd` run inside the system as root: a private mount namespace mounts the overlay,
    /// /proc, /dev and the shared directories, then chroots. The environment is `cmd`'s own
    /// variables and a plain PATH.
    pub fn command(&self, cmd: &Command) -> Command {
        let m = self.merged.display().to_string();
        let mut script = format!(
            "set -e\nmount -t overlay overlay -o lowerdir={},upperdir={},workdir={} {m}\n\
             mount -t proc proc {m}/proc\nmount --rbind /dev {m}/dev\n",
            self.lower.display(),
            self.upper.display(),
            self.work.display()
        );
        for s in &self.shared {
            script.push_str(&format!(
                "mkdir -p {m}{p}\nmount --bind {p} {m}{p}\n",
                p = s.display()
            ));
        }
        script.push_str(&format!(
            "exec chroot {m} /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \"$@\"\n"
        ));
        let mut outer = Command::new("unshare");
        outer
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(script)
            .arg("sh");
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                outer.arg(format!("{}={}", k.to_string_lossy(), v.to_string_lossy()));
            }
        }
        // Inside, a path with `..` may climb out of a bind mount: the program by its real path.
        let program = Path::new(cmd.get_program());
        outer
            .arg(
                program
                    .canonicalize()
                    .unwrap_or_else(|_| program.to_path_buf()),
            )
            .args(cmd.get_args());
        if let Some(dir) = cmd.get_current_dir() {
            outer.current_dir(dir);
        }
        outer.stdin(Stdio::null());
        outer
    }

    /// Runs a shell command inside; panics with its output when it fails.
    pub fn sh(&self, script: &str) -> String {
        let mut inner = Command::new("/bin/sh");
        inner.args(["-c", script]);
        let r = run(self.command(&inner));
        assert_eq!(r.code, Some(0), "in the Debian root: {script}\n{r}");
        r.stdout
    }
}

/// A package built with dpkg-deb: `name_version_all.deb`, installing
/// `/usr/share/NAME/version` and the conffile `/etc/NAME.conf`.
pub fn build_deb(dir: &Path, name: &str, version: &str) -> PathBuf {
    let tree = dir.join(format!("{name}-{version}"));
    std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(tree.join(format!("usr/share/{name}"))).unwrap();
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(
        tree.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Ferry Tests <tests@ferry.invalid>\nSection: misc\nPriority: optional\nDescription: a package of the APT tests\n"
        ),
    )
    .unwrap();
    std::fs::write(tree.join("DEBIAN/conffiles"), format!("/etc/{name}.conf\n")).unwrap();
    std::fs::write(
        tree.join(format!("etc/{name}.conf")),
        format!("# {name} {version}\nsetting = {version}\n"),
    )
    .unwrap();
    std::fs::write(tree.join(format!("usr/share/{name}/version")), version).unwrap();
    let deb = dir.join(format!("{name}_{version}_all.deb"));
    let r = run({
        let mut c = Command::new("dpkg-deb");
        c.args(["--root-owner-group", "--build"])
            .arg(&tree)
            .arg(&deb);
        c
    });
    assert_eq!(r.code, Some(0), "dpkg-deb: {r}");
    deb
}

/// An APT repository with one suite per entry of `suites` (name, packages), its Release
/// files signed with a fresh key, served over HTTP on loopback while this lives.
pub struct AptRepo {
    pub url: String,
    /// The public key.
    keyring: PathBuf,
    server: Child,
    gnupg: PathBuf,
    repo: PathBuf,
    /// When the indices were last written (whole seconds since the epoch).
    published_at: std::cell::Cell<u64>,
}

impl AptRepo {
    pub fn new(dir: &Path, suites: &[(&str, &[&Path])]) -> AptRepo {
        let repo = dir.join("apt-repo");
        std::fs::create_dir_all(&repo).unwrap();
        // GnuPG's socket paths must stay short: its home is not under the test's directory.
        let gnupg = tempfile::Builder::new()
            .prefix("ferry-gpg")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        let keyring = dir.join("apt-repo.gpg");
        let mut server = Command::new("python3")
            .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
            .current_dir(&repo)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        let mut line = String::new();
        BufReader::new(server.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 41235 (http://127.0.0.1:41235/) ..."
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .unwrap_or_else(|| panic!("http.server said {line:?}"))
            .to_string();
        let r = AptRepo {
            url: format!("http://127.0.0.1:{port}/"),
            keyring,
            server,
            gnupg,
            repo,
            published_at: std::cell::Cell::new(0),
        };
        r.gpg(&[
            "--quick-gen-key",
            "Ferry Tests <tests@ferry.invalid>",
            "ed25519",
            "sign",
            "never",
        ]);
        r.gpg(&["--yes", "-o", r.keyring.to_str().unwrap(), "--export"]);
        for (suite, debs) in suites {
            r.publish(suite, debs);
        }
        r
    }

    fn gpg(&self, args: &[&str]) {
        let mut c = Command::new("gpg");
        c.arg("--homedir")
            .arg(&self.gnupg)
            .args([
                "--batch",
                "--quiet",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args);
        let r = run(c);
        assert_eq!(r.code, Some(0), "gpg {args:?}: {r}");
    }

    /// Adds `debs` to `suite` and writes its indices again, signed (`InRelease`). The HTTP
    /// server's `Last-Modified` counts whole seconds: indices rewritten within the second APT
    /// last fetched them would answer its `If-Modified-Since` with 304, so a republish waits
    /// for the next second (as a real mirror's pulses are far apart).
    pub fn publish(&self, suite: &str, debs: &[&Path]) {
        let secs = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        };
        let last = self.published_at.get();
        for _ in 0..30 {
            if secs() > last {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let pool = self.repo.join("pool").join(suite);
        std::fs::create_dir_all(&pool).unwrap();
        for deb in debs {
            std::fs::copy(deb, pool.join(deb.file_name().unwrap())).unwrap();
        }
        let dists = self.repo.join("dists").join(suite);
        let bin = dists.join("main/binary-amd64");
        std::fs::create_dir_all(&bin).unwrap();
        let packages = ftparchive(&self.repo, &["packages", &format!("pool/{suite}")]);
        std::fs::write(bin.join("Packages"), packages).unwrap();
        let _ = std::fs::remove_file(dists.join("Release"));
        let _ = std::fs::remove_file(dists.join("InRelease"));
        let release = ftparchive(
            &self.repo,
            &[
                "-o",
                &format!("APT::FTPArchive::Release::Suite={suite}"),
                "-o",
                &format!("APT::FTPArchive::Release::Codename={suite}"),
                "-o",
                "APT::FTPArchive::Release::Origin=Ferry Tests",
                "-o",
                "APT::FTPArchive::Release::Architectures=amd64 all",
                "-o",
                "APT::FTPArchive::Release::Components=main",
                "release",
                &format!("dists/{suite}"),
            ],
        );
        std::fs::write(dists.join("Release"), release).unwrap();
        let inrelease = dists.join("InRelease");
        let release = dists.join("Release");
        self.gpg(&[
            "--yes",
            "--clearsign",
            "-o",
            inrelease.to_str().unwrap(),
            release.to_str().unwrap(),
        ]);
        self.published_at.set(secs());
    }

    /// Points `debian`'s APT at this repository's `suites` only, trusting only its key.
    pub fn configure(&self, debian: &Debian, suites: &[&str]) {
        let key = "/etc/apt/keyrings/ferry-tests.gpg";
        debian.write(key, std::fs::read(&self.keyring).unwrap());
        let lines: String = suites
            .iter()
            .map(|s| format!("deb [signed-by={key}] {} {s} main\n", self.url))
            .collect();
        debian.write("/etc/apt/sources.list", lines);
    }
}

fn ftparchive(repo: &Path, args: &[&str]) -> String {
    let mut c = Command::new("apt-ftparchive");
    c.args(args).current_dir(repo);
    let r = run(c);
    assert_eq!(r.code, Some(0), "apt-ftparchive {args:?}: {r}");
    r.stdout
}

impl Drop for AptRepo {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&self.gnupg)
            .args(["--kill", "all"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.gnupg);
    }
}
