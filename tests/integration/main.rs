//! Integration tests of firstline, as one test binary: the command line (`cli`), the triage
//! engine through its library API (`engine`), the email channel (`email`) and the policy
//! checker (`policy_check`).

mod accuracy;
mod api;
mod browser;
mod chat;
mod cli;
mod desk;
mod email;
mod engine;
mod fake_discord;
mod golden;
mod mailbox;
mod phrases;
mod policy_check;
mod servers;
mod support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::LazyLock;

use firstline::triage::Policy;

/// The embedded policy, compiled once for every test of the binary that uses the library.
pub static POLICY: LazyLock<Policy> = LazyLock::new(Policy::embedded);

/// The `firstline` binary built for this test run.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_firstline"))
}

/// Runs `firstline ARGS` with `stdin` as standard input.
pub fn run_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start firstline");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("cannot write to firstline's stdin");
    child.wait_with_output().expect("firstline did not finish")
}

/// Runs `firstline ARGS` with no standard input.
pub fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot start firstline")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A file of the repository (fixtures).
pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}
