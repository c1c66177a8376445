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
