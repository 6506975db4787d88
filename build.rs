//! Puts the commit Sluice was built from into `SLUICE_COMMIT` (shown by `sluice --version`):
//! `SLUICE_COMMIT` from the build environment when set (release tarballs, container builds
//! without `.git`), else `git rev-parse --short=12 HEAD`, else `unknown`. (Uncommitted
//! changes are not marked: the script reruns when HEAD moves, not on every edit.)

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=SLUICE_COMMIT");
    let commit = std::env::var("SLUICE_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    // Rebuild when HEAD moves (a commit, a checkout). In a worktree HEAD is in its own git
    // directory and the branch refs in the common one.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
    }
    // (A path that does not exist would make cargo rerun this script on every build, so a
    // packed ref is watched through `packed-refs`.)
    if let (Some(common), Some(head_ref)) = (
        git(&["rev-parse", "--git-common-dir"]),
        git(&["symbolic-ref", "-q", "HEAD"]),
    ) {
        for path in [
            format!("{common}/{head_ref}"),
            format!("{common}/packed-refs"),
        ] {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    println!("cargo:rustc-env=SLUICE_COMMIT={commit}");
}
