use clap::CommandFactory;

/// Every subcommand, flag and argument says what it is for.
#[test]
fn every_command_flag_and_argument_is_described() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        if cmd.get_about().is_none() {
            missing.push(format!("{path}: no description"));
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {id}: no description"));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut missing = Vec::new();
    walk(&super::Cli::command(), "ferryctl", &mut missing);
    assert!(missing.is_empty(), "undescribed:\n{}", missing.join("\n"));
}

/// Offline commands do not offer the connection flags they would ignore; server commands do.
#[test]
fn offline_commands_leave_the_connection_flags_out_of_their_help() {
    let help = |path: &[&str]| {
        let mut args: Vec<String> = path.iter().map(|p| p.to_string()).collect();
        args.push("--help".into());
        let text = super::help_for(&args);
        assert!(
            text.contains(&format!("ferryctl {}", path.join(" "))),
            "{text}"
        );
        text
    };
    for path in super::OFFLINE {
        let text = help(path);
        for flag in ["--server", "--token", "--ca-cert"] {
            assert!(!text.contains(flag), "{path:?} offers {flag}:\n{text}");
        }
    }
    assert!(help(&["hosts", "list"]).contains("--server"));
    // Still accepted: a shell with FERRY_SERVER set runs them all the same.
    let cli = super::Cli::command()
        .try_get_matches_from(["ferryctl", "keygen", "--out", "k", "--server", "http://x"]);
    assert!(cli.is_ok(), "{:?}", cli.err().map(|e| e.to_string()));
}
