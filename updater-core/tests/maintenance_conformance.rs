//! Every `MaintenanceSwitch` shipped in core runs the shared conformance suite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use updater_core::command::ShellCommand;
use updater_core::maintenance::{CommandMaintenance, FlagFileMaintenance};

#[test]
fn flag_file_maintenance_conforms() {
    let dir = tempfile::tempdir().unwrap();
    updater_core::conformance::maintenance::run(&FlagFileMaintenance::new(
        dir.path().join("sub/down.json"),
    ));
}

#[test]
fn command_maintenance_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let switch = CommandMaintenance::new(
        ShellCommand::new("touch down"),
        ShellCommand::new("rm -f down"),
    )
    .with_status(ShellCommand::new("test -f down"))
    .in_dir(dir.path());
    updater_core::conformance::maintenance::run(&switch);
}
