//! What the host-kernel tests share.

use std::process::Command;

/// Runs `cmd` with sh (in the calling thread's network namespace); panics with its stderr
/// if it fails; returns its stdout.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
