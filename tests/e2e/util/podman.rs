//! Podman as this machine needs it: it runs everything in a container of its own (cgroup v1
//! with a v2 hierarchy beside it, which crun refuses; a low open-files limit; no shared
//! mounts). Every podman call of a test (an agent's too, through `PATH`) therefore runs in one
//! mount namespace the test makes, without the v2 mount, with a containers.conf that turns the
//! containers' cgroups off and asks for limits within the machine's. One namespace for all of
//! a test's calls, since a container's storage is mounted by the call that starts it and must
//! be seen by the next (`podman restart`); `/run/netns` is made a shared mount so the network
//! namespaces Podman makes are seen outside it. Nothing else differs from a host where Podman
//! runs as installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::run;

/// The directory holding `podman` as this machine needs it (see the module's note), to put
/// first in `PATH`; dropped, its mount namespace goes.
pub struct PodmanBin {
    bin: PathBuf,
    namespace: PathBuf,
}

impl std::ops::Deref for PodmanBin {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.bin
    }
}

impl Drop for PodmanBin {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.namespace).status();
    }
}

/// `podman` as this machine needs it (see the module's note), first in `PATH`.
pub fn podman_wrapper(dir: &Path) -> PodmanBin {
    let shared = run({
        let mut c = Command::new("sh");
        c.arg("-c").arg(
            "mkdir -p /run/netns && { findmnt /run/netns >/dev/null || mount --bind /run/netns /run/netns; } && mount --make-shared /run/netns",
        );
        c
    });
    assert_eq!(shared.code, Some(0), "{shared}");
    let bin = dir.join("podman-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let conf = dir.join("containers.conf");
    std::fs::write(
        &conf,
        "[containers]\ncgroups = \"disabled\"\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n",
    )
    .unwrap();
    // The namespace, kept by a bind mount on a file of the test's own.
    let namespace = dir.join("podman-mounts");
    std::fs::write(&namespace, "").unwrap();
    let made = run({
        let mut c = Command::new("unshare");
        c.arg(format!("--mount={}", namespace.display()))
            .args(["--propagation", "unchanged", "sh", "-c"])
            .arg("umount /sys/fs/cgroup/unified 2>/dev/null; true");
        c
    });
    assert_eq!(made.code, Some(0), "{made}");
    let wrapper = bin.join("podman");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexport CONTAINERS_CONF={}\nexec nsenter --mount={} /usr/bin/podman \"$@\"\n",
            conf.display(),
            namespace.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    PodmanBin { bin, namespace }
}

pub fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs podman (through the wrapper) and panics with its output when it fails.
pub fn podman(bin: &Path, args: &[&str]) -> String {
    let mut c = Command::new(bin.join("podman"));
    c.args(args).env("PATH", path_with(bin));
    let r = run(c);
    assert_eq!(r.code, Some(0), "podman {args:?}: {r}");
    r.stdout
}
