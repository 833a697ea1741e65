//! Meterline's binaries as child processes, so tests can SIGKILL them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::env::TestEnv;

/// `target/<profile>/` of the running test binary, where `cargo build
/// --workspace --bins` (run by scripts/test.sh) put the binaries.
pub fn bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(|deps| deps.parent()).context("test binary has no target directory")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!("{} is missing: build the binaries first (scripts/test.sh runs `cargo build --workspace --bins`)", path.display());
    }
    Ok(path)
}

/// A running Meterline service (`meterline-rollup`, `meterline-budget`,
/// `meterline-gateway`, ...). Killed (SIGKILL) when dropped.
pub struct Service {
    child: Child,
    name: &'static str,
    pub log: PathBuf,
}

/// The rollup service, as the spine's tests call it.
pub type Rollup = Service;

impl Service {
    /// Starts `binary` with the test's environment plus `extra`, logging to
    /// `<binary>-<instance>.log` in the test's directory.
    pub fn spawn(env: &TestEnv, binary: &'static str, instance: &str, extra: &[(&str, &str)]) -> Result<Self> {
        let log = env.dir.join(format!("{binary}-{instance}.log"));
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let child = Command::new(bin(binary)?)
            .envs(env.process_env())
            .envs(extra.iter().map(|(k, v)| (*k, *v)))
            .env("RUST_LOG", std::env::var("METERLINE_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {binary}"))?;
        Ok(Self { child, name: binary, log })
    }

    /// A rollup instance.
    pub fn start(env: &TestEnv, instance: &str) -> Result<Self> {
        Self::spawn(env, "meterline-rollup", instance, &[])
    }

    /// kill -9: no drain, no commit, no goodbye.
    pub fn kill9(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Fails if the process has exited (it should run until killed).
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            bail!("{} exited with {status}; log:\n{log}", self.name);
        }
        Ok(())
    }

    /// SIGTERM, then wait for the graceful drain.
    pub fn stop(mut self) -> Result<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        Ok(self.child.wait()?)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `meterline loadgen` with `args` against the test's topic.
pub fn start_loadgen(env: &TestEnv, args: &[&str]) -> Result<Child> {
    Command::new(bin("meterline")?)
        .arg("loadgen")
        .args(args)
        .envs(env.process_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting meterline loadgen")
}

/// Waits for a child and fails with its output if it failed.
pub fn wait_ok(child: Child, what: &str) -> Result<String> {
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("{what} failed with {}:\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(stdout)
}
