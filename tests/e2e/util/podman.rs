//! Podman as this machine needs it: it runs everything in a container of its own (cgroup v1
//! with a v2 hierarchy beside it, which crun refuses; a low open-files limit; no shared
//! mounts). Every podman call of a test (an agent's too, through `PATH`) therefore runs in a
//! mount namespace of its own without the v2 mount, with a containers.conf that turns the
//! containers' cgroups off and asks for limits within the machine's; `/run/netns` is made a
//! shared mount so the network namespaces Podman makes are seen by its next call. Nothing
//! else differs from a host where Podman runs as installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::run;

/// `podman` as this machine needs it (see the module's note), first in `PATH`.
pub fn podman_wrapper(dir: &Path) -> PathBuf {
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
    let wrapper = bin.join("podman");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexport CONTAINERS_CONF={}\nexec unshare --mount --propagation unchanged sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec /usr/bin/podman \"$@\"' podman \"$@\"\n",
            conf.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
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
