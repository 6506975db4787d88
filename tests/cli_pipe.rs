//! A CLI command writing into a closed pipe (`sluice check | head -0`) ends quietly instead
//! of panicking with "failed printing to stdout".

use std::process::{Command, Stdio};

#[test]
fn writing_into_a_closed_pipe_does_not_panic() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // every write now fails with EPIPE
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("check")
        .env_remove("SLUICE_CONFIG")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE));
}
