//! `meterline bench …` runs `meterline-bench …` from beside `meterline`:
//! checked with a stand-in that echoes its arguments, so that neither the
//! real benchmarks nor a build of them is needed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A directory holding `meterline` (hard-linked: the executable's own path
/// is where it looks for `meterline-bench`) and nothing else.
fn lone_meterline(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("meterline");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_meterline"), &exe).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_meterline"), &exe).unwrap();
    }
    dir
}

/// Runs `dir/meterline` with a PATH that holds no `meterline-bench`.
fn meterline(dir: &Path, args: &[&str]) -> Output {
    Command::new(dir.join("meterline")).args(args).env("PATH", dir.join("empty")).output().unwrap()
}

// One test, not two: a test writing the stand-in while another forks could
// leave the fork holding it open for writing, and running it would then
// fail with "text file busy".
#[test]
fn bench_hands_over_to_meterline_bench_beside_it_or_says_how_to_build_it() {
    let missing = lone_meterline("bench-missing");
    let out = meterline(&missing, &["bench", "inprocess"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("meterline-bench is not installed next to meterline; build it with cargo build --release -p meterline-bench"),
        "{stderr}"
    );

    let present = lone_meterline("bench-present");
    let stand_in = present.join("meterline-bench");
    std::fs::write(&stand_in, "#!/bin/sh\nprintf '%s\\n' \"$@\"\nexit 7\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = meterline(&present, &["bench", "pipeline", "--events", "5", "--help"]);
    assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "pipeline\n--events\n5\n--help\n");

    let _ = std::fs::remove_dir_all(missing);
    let _ = std::fs::remove_dir_all(present);
}
