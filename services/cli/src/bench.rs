//! `meterline bench`: hands over to the `meterline-bench` binary, so that
//! the operator CLI does not link what the benchmarks run (the rollup's
//! transform, the whole budget service). Every argument after `bench`,
//! `--help` included, goes to it unread, and its exit status is
//! `meterline`'s.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{anyhow, Result};

#[derive(clap::Args)]
#[command(disable_help_flag = true)]
pub struct BenchArgs {
    /// For meterline-bench, e.g. `pipeline --events 300000`; `meterline bench --help` lists the benchmarks.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
    args: Vec<OsString>,
}

const NOT_INSTALLED: &str = "meterline-bench is not installed next to meterline; build it with cargo build --release -p meterline-bench";

/// Becomes `meterline-bench` with the same arguments; returns only if it
/// could not be started.
pub fn run(args: BenchArgs) -> Result<()> {
    let program = locate();
    let mut command = Command::new(&program);
    command.args(&args.args);
    let error = exec(command);
    if error.kind() == io::ErrorKind::NotFound {
        return Err(anyhow!(NOT_INSTALLED));
    }
    Err(anyhow!(error).context(format!("starting {}", program.display())))
}

/// Beside this executable, where cargo builds (and `cargo install` puts)
/// both; failing that the bare name, which is looked up on PATH.
fn locate() -> PathBuf {
    let name = format!("meterline-bench{}", std::env::consts::EXE_SUFFIX);
    std::env::current_exe().ok().map(|exe| exe.with_file_name(&name)).filter(|path| path.is_file()).unwrap_or_else(|| PathBuf::from(name))
}

/// Replaces this process: Ctrl-C and the exit status are the benchmark's
/// own, with no process in between to forward them.
#[cfg(unix)]
fn exec(mut command: Command) -> io::Error {
    use std::os::unix::process::CommandExt;
    command.exec()
}

#[cfg(not(unix))]
fn exec(mut command: Command) -> io::Error {
    match command.status() {
        Ok(status) => std::process::exit(status.code().unwrap_or(1)),
        Err(e) => e,
    }
}
