use super::*;
use ferry_manifests::SigningKeyFile;

fn dir_with_key() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKeyFile::from_seed([9; 32]);
    std::fs::write(
        dir.path().join("release.pub"),
        key.public().to_file_string(),
    )
    .unwrap();
    let cfg = dir.path().join("agent.toml");
    (dir, cfg)
}

const GOOD: &str = r#"
server_url = "http://127.0.0.1:8080"
enrol_token = "abc"
state_dir = "state"
trusted_keys = ["release.pub"]
poll_interval_secs = 60
auto_install = true

[[items]]
name = "web"
root = "/opt/web"
"#;

#[test]
fn a_good_config_loads_with_paths_relative_to_the_file() {
    let (dir, path) = dir_with_key();
    let cfg = Config::parse(GOOD, &path).unwrap();
    assert_eq!(cfg.state_dir, dir.path().join("state"));
    assert_eq!(
        cfg.server_url.as_ref().map(|u| u.as_str()),
        Some("http://127.0.0.1:8080/")
    );
    assert!(cfg.auto_install);
    assert_eq!(cfg.items[0].root, PathBuf::from("/opt/web"));
}

#[test]
fn the_enrolment_token_file_is_read_only_when_the_device_enrols() {
    let (dir, path) = dir_with_key();
    let text = GOOD.replace(
        "enrol_token = \"abc\"",
        "enrol_token_file = \"enrol.token\"",
    );
    // Not provisioned yet (or removed after enrolment): the config is still good.
    let cfg = Config::parse(&text, &path).unwrap();
    let token = cfg.enrol_token.clone().unwrap();
    let err = token.read().unwrap_err();
    assert!(err.contains("enrol.token"), "{err}");
    std::fs::write(dir.path().join("enrol.token"), "\n").unwrap();
    assert!(token.read().unwrap_err().contains("empty"));
    std::fs::write(dir.path().join("enrol.token"), "fen_y\n").unwrap();
    assert_eq!(token.read().unwrap(), "fen_y");
}

#[test]
fn a_device_needs_a_server_or_a_repository_and_may_have_both() {
    let (_dir, path) = dir_with_key();
    let without = GOOD.replace("server_url = \"http://127.0.0.1:8080\"\n", "");
    let err = Config::parse(&without, &path).unwrap_err().to_string();
    assert!(
        err.contains("server_url") && err.contains("repository_url"),
        "{err}"
    );
    let standalone = format!("repository_url = \"https://example.org/releases\"\n{without}");
    let cfg = Config::parse(&standalone, &path).unwrap();
    assert!(cfg.server_url.is_none());
    assert_eq!(
        cfg.repository_url.as_ref().map(|u| u.as_str()),
        Some("https://example.org/releases/"),
        "a trailing slash so ITEM.index.json joins below it"
    );
    let both = format!("repository_url = \"http://127.0.0.1:9/r\"\n{GOOD}");
    assert!(Config::parse(&both, &path).unwrap().server_url.is_some());
    let bad = format!("repository_url = \"file:///srv\"\n{GOOD}");
    let err = Config::parse(&bad, &path).unwrap_err().to_string();
    assert!(err.contains("repository_url"), "{err}");
}

#[test]
fn an_unknown_key_is_named_with_the_file() {
    let (_dir, path) = dir_with_key();
    let err = Config::parse(&format!("pol_interval = 3\n{GOOD}"), &path).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("pol_interval"), "{text}");
    assert!(text.contains("agent.toml"), "{text}");
}

#[test]
fn bad_values_name_their_key() {
    let (_dir, path) = dir_with_key();
    let cases = [
        (GOOD.replace("60", "0"), "poll_interval_secs"),
        (
            GOOD.replace("http://127.0.0.1:8080", "ftp://x"),
            "server_url",
        ),
        (GOOD.replace("/opt/web", "opt/web"), "root"),
        (GOOD.replace("release.pub", "missing.pub"), "trusted_keys"),
        (
            GOOD.replace("auto_install = true", "auto_install = \"yes\""),
            "auto_install",
        ),
    ];
    for (text, key) in cases {
        let err = Config::parse(&text, &path).unwrap_err().to_string();
        assert!(err.contains(key), "expected {key} in: {err}");
    }
}

#[test]
fn a_key_path_is_named_as_written_and_where_it_resolved() {
    let (dir, path) = dir_with_key();
    let err = Config::parse(&GOOD.replace("release.pub", "keys/missing.pub"), &path)
        .unwrap_err()
        .to_string();
    let resolved = dir.path().join("keys/missing.pub");
    assert!(
        err.contains("\"keys/missing.pub\"") && err.contains(&resolved.display().to_string()),
        "{err}"
    );
}

#[test]
fn the_example_config_is_valid() {
    let (dir, path) = dir_with_key();
    std::fs::write(dir.path().join("enrol.token"), "fen_x\n").unwrap();
    let text = include_str!("../../ferry-agent.example.toml")
        .replace("/etc/ferry/enrol.token", "enrol.token")
        .replace("/etc/ferry/release.pub", "release.pub");
    // As shipped, it configures nothing: the agent says what to set and does nothing.
    let err = Config::parse(&text, &path).unwrap_err();
    assert!(
        matches!(err, crate::config::ConfigError::Unconfigured { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("[[items]]"), "{err}");
    // With its examples uncommented it is valid.
    let text = text.replace("# server_url =", "server_url =").replace(
        "# [[items]]\n# name = \"web\"\n# root = ",
        "[[items]]\nname = \"web\"\nroot = ",
    );
    let cfg = Config::parse(&text, &path).unwrap();
    assert_eq!(
        cfg.enrol_token.as_ref().map(|t| t.read()),
        Some(Ok("fen_x".to_string()))
    );
    assert_eq!(cfg.items.len(), 1);
}

#[test]
fn a_mistyped_key_gets_a_suggestion_not_the_whole_list() {
    let (_dir, path) = dir_with_key();
    let err = Config::parse("stat_dir = \"x\"\n", &path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 1: unknown key `stat_dir`; did you mean `state_dir`?"),
        "{err}"
    );
    assert!(!err.contains("server_url"), "{err}");
    let err = Config::parse("\n\nzzzzzzzzzzzzzzzzzzzzzzzzzzz = 1\n", &path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 3: unknown key `zzzzzzzzzzzzzzzzzzzzzzzzzzz`"),
        "{err}"
    );
    assert!(err.contains("docs/configuration.md"), "{err}");
}

#[test]
fn sources_take_only_their_own_keys_and_a_command_source_is_checked() {
    let (_dir, cfg) = dir_with_key();
    let parse = |extra: &str| Config::parse(&format!("{GOOD}\n{extra}"), &cfg);
    let ok = parse(
        "[[sources]]\nkind = \"apt\"\n\n[[sources]]\nkind = \"command\"\nname = \"npm\"\ncheck = \"npm ls -g --json\"\n",
    )
    .unwrap();
    assert_eq!(ok.sources.len(), 2);
    assert!(
        matches!(&ok.sources[1], SourceConfig::Command(c) if c.name == "npm"
        && c.timeout == std::time::Duration::from_secs(COMMAND_TIMEOUT_SECS))
    );
    let err = |extra: &str| parse(extra).unwrap_err().to_string();
    // A key of another kind.
    let e = err("[[sources]]\nkind = \"apt\"\ncheck = \"x\"\n");
    assert!(e.contains("check"), "{e}");
    let e = err("[[sources]]\nkind = \"flatpak\"\n");
    assert!(e.contains("flatpak") && e.contains("command"), "{e}");
    let e = err("[[sources]]\nkind = \"command\"\nname = \"NPM\"\ncheck = \"x\"\n");
    assert!(e.contains("lowercase"), "{e}");
    let e = err("[[sources]]\nkind = \"command\"\nname = \"npm\"\n");
    assert!(e.contains("check"), "{e}");
    let e =
        err("[[sources]]\nkind = \"command\"\nname = \"npm\"\ncheck = \"x\"\ntimeout_secs = 0\n");
    assert!(e.contains("timeout_secs"), "{e}");
    let twice = "[[sources]]\nkind = \"command\"\nname = \"npm\"\ncheck = \"x\"\n";
    let e = err(&format!("{twice}\n{twice}"));
    assert!(e.contains("two command sources"), "{e}");
}
