//! Upgrades of the software a source found (`PackageJob`, docs/sources.md): one run of the
//! source's installer for every package of the job (for `apt`, one `apt-get install
//! --only-upgrade`), its output live to the server and, for an interactive job, on the
//! operator's terminal; the report keeps the output and each package's version before and
//! after. Nothing is rolled back: APT has no way back to the version before.
//!
//! The decisions (the command line, what the output means, what changed) are plain
//! functions; `run` is the shell around them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ferry_manifests::wire::{now, Outcome, PackageChange, PackageJob, PackageReport};

use super::hooks;
use super::terminal;
use crate::agent::Agent;
use crate::config::{AptSource, CommandSource, ContainersSource, SourceConfig};
use crate::error::{io_err, Error};
use crate::inventory::containers;
use crate::inventory::shell_quote;

/// How long one upgrade run may take before it is killed.
pub const UPGRADE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Runs every package job the last check-in handed out; each ends in a queued report, or,
/// when the package manager's lock is held, stays pending on the server (told why) for the
/// next run.
pub fn run(agent: &mut Agent) -> Result<(), Error> {
    let jobs = std::mem::take(&mut agent.package_jobs);
    for job in jobs {
        agent.check_stop()?;
        let source = agent.cfg.sources.iter().find(|s| match s {
            SourceConfig::Apt(_) => job.source == "apt",
            SourceConfig::Command(c) => c.name == job.source,
            SourceConfig::Containers(_) => job.source == containers::SOURCE,
            SourceConfig::Forge(_) => job.source == crate::inventory::forge::SOURCE,
        });
        let started_at = now();
        let ended = match source.cloned() {
            Some(SourceConfig::Apt(apt)) => upgrade_apt(agent, &job, &apt),
            Some(SourceConfig::Command(c)) => upgrade_command(agent, &job, &c),
            Some(SourceConfig::Containers(c)) => upgrade_containers(agent, &job, &c),
            Some(SourceConfig::Forge(_)) => Ended::Failed {
                message: "a forge's releases are tracked, not installed by Ferry: install them by their own means, or publish them as a Ferry item's release".into(),
                output: String::new(),
                changes: Vec::new(),
            },
            None => Ended::Failed {
                message: format!(
                    "this device has no source named {:?} in its agent.toml ([[sources]])",
                    job.source
                ),
                output: String::new(),
                changes: Vec::new(),
            },
        };
        let (outcome, message, output, changes) = match ended {
            Ended::Waiting(why) => {
                tracing::warn!(source = %job.source, "{why}");
                agent
                    .api
                    .note_waiting(&job.job_id, &format!("waiting: {why}"));
                if !agent.packages_waiting.contains(&job.job_id) {
                    agent.packages_waiting.push(job.job_id.clone());
                }
                continue;
            }
            Ended::Done {
                message,
                output,
                changes,
            } => (Outcome::Installed, message, output, changes),
            Ended::Failed {
                message,
                output,
                changes,
            } => (Outcome::Failed, message, output, changes),
        };
        let report = PackageReport {
            report_id: uuid::Uuid::new_v4().to_string(),
            job_id: job.job_id.clone(),
            source: job.source.clone(),
            outcome,
            message,
            output,
            changes,
            started_at,
            finished_at: now(),
        };
        match outcome {
            Outcome::Installed => tracing::info!(source = %job.source, "{}", report.message),
            _ => {
                tracing::warn!(source = %job.source, outcome = outcome.as_str(), "{}", report.message)
            }
        }
        if let Some(progress) = &agent.progress {
            progress.line(&format!(
                "{} packages: {} — {}",
                job.source,
                outcome.as_str(),
                report.message
            ));
        }
        crate::report::queue_packages(&agent.dir, &report)?;
        agent.outcomes.push(outcome);
    }
    Ok(())
}

/// How one job ended.
enum Ended {
    Done {
        message: String,
        output: String,
        changes: Vec<PackageChange>,
    },
    Failed {
        message: String,
        output: String,
        changes: Vec<PackageChange>,
    },
    /// Not started, for a cause that passes (the package manager's lock is held): the job
    /// stays pending.
    Waiting(String),
}

fn upgrade_apt(agent: &Agent, job: &PackageJob, apt: &AptSource) -> Ended {
    let failed = |message: String| Ended::Failed {
        message,
        output: String::new(),
        changes: Vec::new(),
    };
    let command = match apt_command(&job.packages, job.interactive) {
        Ok(c) => c,
        Err(why) => return failed(why),
    };
    let dpkg_dir = apt.dpkg_status.parent().unwrap_or(Path::new("/"));
    if let Some(holder) = lock_holder(dpkg_dir) {
        return Ended::Waiting(holder);
    }
    let before = match apt_versions(apt) {
        Ok(v) => v,
        Err(e) => return failed(format!("cannot read the installed packages: {e}")),
    };
    let result = run_installer(agent, job, &command, &command);
    if !result.success && apt_lock_refused(&result.output) {
        return Ended::Waiting(format!(
            "another process took the APT lock first ({}); the upgrade is tried again at the next run",
            last_line(&result.output)
        ));
    }
    let after = apt_versions(apt).unwrap_or_default();
    ended(job, &result, &before, &after, "apt-get")
}

fn upgrade_command(agent: &Agent, job: &PackageJob, source: &CommandSource) -> Ended {
    let Some(install) = &source.install else {
        return Ended::Failed {
            message: format!(
                "the source {:?} has no `install` command in agent.toml; its software is tracked, not upgraded",
                source.name
            ),
            output: String::new(),
            changes: Vec::new(),
        };
    };
    let versions = |found: Vec<ferry_manifests::wire::InventoryPackage>| {
        found
            .into_iter()
            .map(|p| (p.name, p.version))
            .collect::<BTreeMap<_, _>>()
    };
    let before = crate::inventory::command::read(source)
        .map(versions)
        .unwrap_or_default();
    // The names go as the command's arguments ("$@"), quoted for the shell.
    let mut command = format!("set -- {}\n{install}", {
        let quoted: Vec<String> = job.packages.iter().map(|p| shell_quote(p)).collect();
        quoted.join(" ")
    });
    command.push('\n');
    let result = run_installer(agent, job, &command, install);
    let after = crate::inventory::command::read(source)
        .map(versions)
        .unwrap_or_default();
    ended(job, &result, &before, &after, "its install command")
}

/// Containers move to the newest tag the registry offered at the last check: one script
/// pulls and recreates each in turn (Podman; the old container comes back when the new one
/// does not start). Docker has no way to recreate a container with its settings and a new
/// image, so a Docker host's containers are tracked, not upgraded.
fn upgrade_containers(agent: &Agent, job: &PackageJob, source: &ContainersSource) -> Ended {
    let failed = |message: String| Ended::Failed {
        message,
        output: String::new(),
        changes: Vec::new(),
    };
    if source.engine != "podman" {
        return failed(format!(
            "upgrading {} containers is not built (Podman's are); use a command source with the host's own compose commands",
            source.engine
        ));
    }
    let versions = |running: &[containers::Running]| {
        containers::inventory(running, &containers::TagCache::default())
            .into_iter()
            .map(|p| (p.name, p.version))
            .collect::<BTreeMap<_, _>>()
    };
    let running = match containers::running(source) {
        Ok(r) => r,
        Err(e) => return failed(e.to_string()),
    };
    let before = versions(&running);
    let cache = containers::TagCache::load(&agent.dir.root().join("containers-tags.json"));
    let mut script = String::from("status=0\n");
    for name in &job.packages {
        let Some(image) = running
            .iter()
            .find(|r| &r.name == name)
            .and_then(|r| containers::parse_ref(&r.image))
        else {
            return failed(format!("no running container is named {name:?}"));
        };
        if !containers::valid_name(name) {
            return failed(format!("{name:?} is not a container name; nothing was run"));
        }
        let newest = image.tag.as_deref().and_then(|tag| {
            cache
                .tags
                .get(&image.name())
                .and_then(|tags| containers::newest_tag(tag, tags))
        });
        let Some(newest) = newest else {
            return failed(format!(
                "no newer tag of {} is known for {name}; check again first",
                image.name()
            ));
        };
        let insecure = source.insecure_registries.contains(&image.registry);
        script.push_str(&format!(
            "( {} ) || status=1\n",
            containers::recreate_script(name, &format!("{}:{newest}", image.name()), insecure)
        ));
    }
    script.push_str("exit $status\n");
    let shown = format!("podman: pull and recreate {}", job.packages.join(", "));
    let result = run_installer(agent, job, &script, &shown);
    let after = containers::running(source)
        .map(|r| versions(&r))
        .unwrap_or_default();
    ended(job, &result, &before, &after, "podman")
}

/// Runs the installer with the job's live output and, for an interactive job, the
/// operator's terminal.
fn run_installer(agent: &Agent, job: &PackageJob, command: &str, shown: &str) -> hooks::HookResult {
    let mut live = crate::client::LiveOutput::new(&agent.api, Some(&job.job_id));
    let terminal = match (job.interactive, agent.cfg.server_url.is_some()) {
        (true, true) => {
            live = live.interactive();
            Some(terminal::Terminal::open(
                &agent.api,
                &job.job_id,
                Duration::from_secs(agent.cfg.interactive_timeout_secs),
            ))
        }
        _ => None,
    };
    let item = ferry_manifests::wire::packages_item(&job.source);
    let version = format!("{} packages", job.packages.len());
    let env = hooks::HookEnv {
        item: &item,
        version: &version,
        previous_version: None,
        root: Path::new("/"),
        release_dir: Path::new("/"),
        terminal: terminal.as_ref(),
    };
    let stop = hooks::Stop {
        flag: &agent.stop,
        grace: Duration::from_secs(agent.cfg.stop_grace_secs),
        since: std::cell::Cell::new(None),
    };
    live.push(&format!("$ {shown}\n"));
    let mut result = hooks::run(command, &env, UPGRADE_TIMEOUT, Some(&stop), &mut |text| {
        live.push(text)
    });
    let trailer = format!("[{} {}]\n", job.source, result.status);
    live.push(&trailer);
    live.flush();
    result.output = format!("$ {shown}\n{}{trailer}", result.output);
    result
}

/// The report of a finished run: what changed, and in words.
fn ended(
    job: &PackageJob,
    result: &hooks::HookResult,
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    installer: &str,
) -> Ended {
    let changes = changes(&job.packages, before, after);
    let output = result.output.clone();
    if result.success {
        Ended::Done {
            message: summary(&changes),
            output,
            changes,
        }
    } else {
        Ended::Failed {
            message: format!(
                "{installer} {}: {}; {}",
                result.status,
                last_line(&output),
                summary(&changes)
            ),
            output,
            changes,
        }
    }
}

/// The one `apt-get` run for a job. Non-interactive: no question is asked, and a
/// configuration file the device edited is kept (`--force-confold`; one it did not edit
/// takes the package's new version, `--force-confdef`). Interactive: dpkg asks the operator.
/// Package names must be Debian's (lowercase letters, digits, `+-.`, an optional `:ARCH`),
/// so nothing in them reaches the shell.
pub fn apt_command(packages: &[String], interactive: bool) -> Result<String, String> {
    if packages.is_empty() {
        return Err("the job names no package".into());
    }
    for p in packages {
        if !debian_name(p) {
            return Err(format!(
                "{p:?} is not a Debian package name; nothing was run"
            ));
        }
    }
    let names = packages.join(" ");
    Ok(if interactive {
        format!("DEBIAN_FRONTEND=teletype apt-get install --only-upgrade -y {names}")
    } else {
        format!(
            "DEBIAN_FRONTEND=noninteractive apt-get install --only-upgrade -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold {names}"
        )
    })
}

/// `NAME` or `NAME:ARCH` as Debian policy allows them.
fn debian_name(name: &str) -> bool {
    let (package, arch) = match name.split_once(':') {
        Some((p, a)) => (p, Some(a)),
        None => (name, None),
    };
    let package_ok = package.len() >= 2
        && package.len() <= 128
        && package
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && package
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    let arch_ok = arch.is_none_or(|a| {
        !a.is_empty()
            && a.len() <= 32
            && a.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    package_ok && arch_ok
}

/// Whether apt-get stopped because another process holds the dpkg or APT lock.
pub fn apt_lock_refused(output: &str) -> bool {
    output.contains("Could not get lock") || output.contains("Unable to acquire the dpkg")
}

/// Each requested package's version before and after.
pub fn changes(
    packages: &[String],
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<PackageChange> {
    packages
        .iter()
        .map(|name| PackageChange {
            name: name.clone(),
            from: before.get(name).cloned(),
            to: after.get(name).cloned(),
        })
        .collect()
}

/// "upgraded foo 1.0 → 1.1"; the packages left as they were named too.
pub fn summary(changes: &[PackageChange]) -> String {
    let (upgraded, kept): (Vec<&PackageChange>, Vec<&PackageChange>) = changes
        .iter()
        .partition(|c| c.to.is_some() && c.from != c.to);
    let mut parts = Vec::new();
    if !upgraded.is_empty() {
        let list: Vec<String> = upgraded
            .iter()
            .map(|c| {
                format!(
                    "{} {} → {}",
                    c.name,
                    c.from.as_deref().unwrap_or("(none)"),
                    c.to.as_deref().unwrap_or("(none)")
                )
            })
            .collect();
        parts.push(format!("upgraded {}", list.join(", ")));
    }
    if !kept.is_empty() {
        let list: Vec<&str> = kept.iter().map(|c| c.name.as_str()).collect();
        parts.push(format!("not upgraded: {}", list.join(", ")));
    }
    if parts.is_empty() {
        "nothing to upgrade".into()
    } else {
        parts.join("; ")
    }
}

/// The last non-empty line of an output, for a one-line message.
fn last_line(output: &str) -> String {
    output
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no output")
        .chars()
        .take(300)
        .collect()
}

/// Installed versions from the dpkg status database, by the names the inventory uses.
fn apt_versions(apt: &AptSource) -> Result<BTreeMap<String, String>, Error> {
    let text = std::fs::read_to_string(&apt.dpkg_status).map_err(io_err(&apt.dpkg_status))?;
    Ok(crate::inventory::apt::installed_debs(&text)
        .into_iter()
        .map(|i| (i.name, i.version))
        .collect())
}

/// Who holds dpkg's locks (`lock-frontend`, then `lock` in dpkg's directory), if anyone:
/// APT and dpkg take them with `fcntl`, so asking the kernel (`F_GETLK`) names the holder
/// without taking anything.
fn lock_holder(dpkg_dir: &Path) -> Option<String> {
    for name in ["lock-frontend", "lock"] {
        let path = dpkg_dir.join(name);
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        // The whole file, as APT locks it.
        let mut probe = nix::libc::flock {
            l_type: nix::libc::F_WRLCK as i16,
            l_whence: nix::libc::SEEK_SET as i16,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        if nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETLK(&mut probe)).is_ok()
            && probe.l_type != nix::libc::F_UNLCK as i16
        {
            return Some(format!(
                "the APT lock {} is held by process {} (another apt-get, dpkg or unattended-upgrades); the upgrade is tried again at the next run",
                path.display(),
                probe.l_pid
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_apt_command_keeps_edited_conffiles_unless_interactive() {
        let names = vec!["foo".to_string(), "libc6:amd64".to_string()];
        let quiet = apt_command(&names, false).unwrap();
        assert!(
            quiet.starts_with("DEBIAN_FRONTEND=noninteractive apt-get install --only-upgrade -y")
        );
        assert!(quiet.contains("--force-confold"));
        assert!(quiet.ends_with(" foo libc6:amd64"));
        let asked = apt_command(&names, true).unwrap();
        assert!(!asked.contains("--force-conf"), "{asked}");
        assert!(asked.contains("--only-upgrade"));
    }

    #[test]
    fn a_name_that_is_not_debian_s_never_reaches_the_shell() {
        for bad in ["foo;reboot", "-o", "Foo", "a", "$(id)", "foo bar", "foo:"] {
            assert!(
                apt_command(&[bad.to_string()], false).is_err(),
                "{bad} accepted"
            );
        }
        assert!(apt_command(&[], false).is_err());
        assert!(apt_command(&["g++-12".to_string()], false).is_ok());
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("printf %s {}", shell_quote("it's $(id) `x`")))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's $(id) `x`");
    }

    #[test]
    fn the_summary_names_what_changed_and_what_did_not() {
        let before = BTreeMap::from([
            ("foo".to_string(), "1.0".to_string()),
            ("bar".to_string(), "2.0".to_string()),
        ]);
        let after = BTreeMap::from([
            ("foo".to_string(), "1.1".to_string()),
            ("bar".to_string(), "2.0".to_string()),
        ]);
        let c = changes(&["foo".into(), "bar".into()], &before, &after);
        assert_eq!(c[0].from.as_deref(), Some("1.0"));
        assert_eq!(c[0].to.as_deref(), Some("1.1"));
        assert_eq!(summary(&c), "upgraded foo 1.0 → 1.1; not upgraded: bar");
        assert_eq!(summary(&[]), "nothing to upgrade");
    }

    #[test]
    fn apt_s_lock_messages_are_recognised() {
        assert!(apt_lock_refused(
            "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 42 (apt-get)"
        ));
        assert!(!apt_lock_refused("E: Unable to locate package foo"));
    }

    #[test]
    fn a_held_fcntl_lock_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(lock_holder(dir.path()), None);
        let path = dir.path().join("lock-frontend");
        std::fs::write(&path, "").unwrap();
        assert_eq!(lock_holder(dir.path()), None);
        // Another process holds it, as apt-get would.
        let mut holder = std::process::Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import fcntl,sys,time\nf=open({:?},'w')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('held',flush=True)\ntime.sleep(30)",
                path.display().to_string()
            ))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        let found = lock_holder(dir.path());
        holder.kill().unwrap();
        holder.wait().unwrap();
        let found = found.expect("the lock is seen");
        assert!(found.contains(&holder.id().to_string()), "{found}");
        assert!(found.contains("lock-frontend"), "{found}");
    }
}
