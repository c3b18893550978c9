//! What the CLI's tests share: running `civic`, a seeded data directory,
//! the demo started as a user starts it.
#![allow(dead_code)] // each test binary uses its own part

use std::path::Path;
use std::process::{Command, Output, Stdio};

pub fn civic(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_civic"));
    cmd.args(args)
        .env_remove("CIVIC_DATABASE_URL")
        .env_remove("CIVIC_DATA_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("civic runs");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails with exactly one line on stderr.
pub fn fails_in_one_line(out: &Output) -> String {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

pub fn seed(dir: &Path, env: &[(&str, &str)]) {
    let data = dir.to_str().unwrap();
    let mut env = env.to_vec();
    env.push(("CIVIC_DATA_DIR", data));
    ok(&civic(&["migrate"], &env, None));
    ok(&civic(
        &[
            "admin",
            "institution",
            "create",
            "--name",
            "KDCA",
            "--kind",
            "health_authority",
        ],
        &env,
        None,
    ));
    let out = ok(&civic(
        &[
            "admin",
            "user",
            "create",
            "--institution",
            "1",
            "--username",
            "kim",
            "--display-name",
            "Kim",
            "--duty",
            "investigator:seoul",
        ],
        &env,
        Some("correct horse battery staple\n"),
    ));
    assert!(out.contains("created user 1"));
    let listed = ok(&civic(
        &[
            "admin",
            "user",
            "list",
            "--institution",
            "1",
            "--format",
            "csv",
        ],
        &env,
        None,
    ));
    assert!(
        listed.starts_with("id,username,display name,duties"),
        "{listed}"
    );
    assert!(listed.contains("investigator:seoul"));
}

/// Kills the child if the test ends early.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

/// A demo started as a user starts it, `civic GLOBAL… demo --addr
/// 127.0.0.1:0 --data-dir DATA ARGS…`, read until it printed its logins;
/// the rest of what it prints is drained so that it never blocks. Its
/// logs (stderr) stay piped with `keep_logs`, else they are drained too.
pub struct Demo {
    pub process: Running,
    pub url: String,
    /// What it printed up to its logins.
    pub printed: String,
}

pub fn spawn_demo(data: &Path, global: &[&str], args: &[&str], keep_logs: bool) -> Demo {
    use std::io::BufRead;
    let child = Command::new(env!("CARGO_BIN_EXE_civic"))
        .args(global)
        .args(["demo", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(args)
        .env_remove("CIVIC_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("civic demo runs");
    let mut process = Running(child);
    if !keep_logs {
        let stderr = process.0.stderr.take().unwrap();
        std::thread::spawn(move || std::io::BufReader::new(stderr).lines().for_each(drop));
    }
    let mut lines = std::io::BufReader::new(process.0.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let mut url = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if let Some(rest) = line.split("running at ").nth(1) {
            url = Some(rest.trim().to_owned());
        }
        if line.starts_with("Logins are kept in") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let url = url.unwrap_or_else(|| panic!("the demo printed no address:\n{printed}"));
    Demo {
        process,
        url,
        printed,
    }
}

/// The demo's logins (`demo-credentials.json` in its data directory).
pub fn logins(data: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(data.join("demo-credentials.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}
