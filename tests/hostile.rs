//! Every input is untrusted: each hostile file is refused with a message that
//! names the file (and line where known) and what is accepted, the daemon runs
//! on, and fixing the file makes it count.

mod common;

use common::*;
use std::fs;
use std::time::{Duration, Instant};

struct Bus {
    p: Project,
    daemon: Guard,
}

impl Bus {
    fn new(args: &[&str]) -> Bus {
        let p = Project::new();
        let daemon = p.serve(args, &[]);
        Bus { p, daemon }
    }

    fn sync(&self) {
        self.p.sync();
    }

    /// The refusal of `rel`, after checking the daemon is still up.
    fn refused(&mut self, rel: &str) -> serde_json::Value {
        self.sync();
        assert!(
            self.daemon
                .child
                .as_mut()
                .unwrap()
                .try_wait()
                .unwrap()
                .is_none(),
            "the daemon died"
        );
        let s = self.p.status_json();
        let r = s["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["path"] == rel)
            .cloned()
            .unwrap_or_else(|| panic!("{rel} was not refused: {}", s["rejected"]));
        // Shown by `gtmd status` too.
        let text = String::from_utf8(self.p.run(&["status"]).stdout).unwrap();
        assert!(text.contains(rel), "{text}");
        r
    }

    fn accepted(&mut self, rel: &str) {
        self.sync();
        let s = self.p.status_json();
        assert!(
            !s["rejected"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["path"] == rel),
            "{rel} still refused: {}",
            s["rejected"]
        );
    }

    fn reviews(&self) -> usize {
        self.p.status_json()["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["kind"]["kind"] == "conflict-review")
            .count()
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        self.daemon.signal(libc::SIGTERM);
        let _ = self.daemon.wait(Duration::from_secs(10));
    }
}

fn message(r: &serde_json::Value) -> String {
    r["message"].as_str().unwrap().to_string()
}

#[test]
fn truncated_yaml() {
    let mut b = Bus::new(&[]);
    b.p.write(
        "status/coordinator.md",
        "agent: coordinator\nphase: 1\nstatus: complete\noutputs:\n  - [strategy/gtm",
    );
    let r = b.refused("status/coordinator.md");
    assert!(r["line"].as_u64().is_some());
    assert!(message(&r).contains("YAML"), "{r}");
    b.p.write(
        "status/coordinator.md",
        "agent: coordinator\nphase: 1\ntask: x\nstatus: in-progress\n",
    );
    b.accepted("status/coordinator.md");
}

#[test]
fn yaml_alias_bomb() {
    let mut b = Bus::new(&[]);
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (i, c) in "bcdefghi".chars().enumerate() {
        let prev = (b'a' + i as u8) as char;
        bomb.push_str(&format!(
            "{c}: &{c} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    bomb.push_str("agent: coordinator\nstatus: complete\n");
    let t = Instant::now();
    b.p.write("status/coordinator.md", &bomb);
    let r = b.refused("status/coordinator.md");
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(
        message(&r).contains("alias")
            || message(&r).contains("anchor")
            || message(&r).contains("large"),
        "{r}"
    );
}

#[test]
fn unknown_agent() {
    let mut b = Bus::new(&[]);
    b.p.write(
        "status/coordinator.md",
        "agent: growth-hacker\nstatus: complete\ntask: x\n",
    );
    let r = b.refused("status/coordinator.md");
    assert!(
        message(&r).contains("growth-hacker") && message(&r).contains("demand-generation"),
        "{r}"
    );
    b.p.write("status/wizard.md", "agent: coordinator\nstatus: complete\n");
    let r = b.refused("status/wizard.md");
    assert!(message(&r).contains("not an agent"), "{r}");
}

#[test]
fn unknown_status_value() {
    let mut b = Bus::new(&[]);
    b.p.write(
        "status/brand-messaging.md",
        "agent: brand\nphase: 1\ntask: x\nstatus: done\n",
    );
    let r = b.refused("status/brand-messaging.md");
    assert_eq!(r["line"], 4);
    let m = message(&r);
    assert!(
        m.contains("done") && m.contains("in-progress") && m.contains("failed"),
        "{m}"
    );
}

#[test]
fn outputs_outside_the_workspace() {
    let mut b = Bus::new(&[]);
    for bad in ["../../etc/passwd", "/etc/passwd"] {
        b.p.write(
            "status/growth-analyst.md",
            &format!(
                "agent: growth-analyst\nphase: 1\ntask: x\nstatus: complete\noutputs:\n  - {bad}\n"
            ),
        );
        let r = b.refused("status/growth-analyst.md");
        assert!(message(&r).contains("inside the workspace"), "{r}");
        // The `outputs:` key or the item itself.
        let line = r["line"].as_u64().unwrap();
        assert!(line == 5 || line == 6, "{r}");
    }
}

#[test]
fn symlink_out_of_the_workspace() {
    let mut b = Bus::new(&[]);
    let outside = b.p.root().join("secret.md");
    fs::write(&outside, "# not yours\n").unwrap();
    std::os::unix::fs::symlink(&outside, b.p.path("conflicts/evil.md")).unwrap();
    let r = b.refused("conflicts/evil.md");
    assert!(message(&r).contains("outside the workspace"), "{r}");
    assert_eq!(b.reviews(), 0);
    // A symlink that stays inside is read through.
    b.p.write("learnings/real.md", "# Budget\n\nwe disagree\n");
    fs::remove_file(b.p.path("conflicts/evil.md")).unwrap();
    std::os::unix::fs::symlink(b.p.path("learnings/real.md"), b.p.path("conflicts/evil.md"))
        .unwrap();
    b.accepted("conflicts/evil.md");
    assert_eq!(b.reviews(), 1);
}

#[test]
fn files_over_the_size_limit() {
    let mut b = Bus::new(&[]);
    b.p.write("conflicts/huge.md", &"x".repeat(2 * 1024 * 1024));
    let r = b.refused("conflicts/huge.md");
    assert!(message(&r).contains("at most 1048576 bytes"), "{r}");
    // 100 MB: refused by its size without being read.
    let f = fs::File::create(b.p.path("conflicts/enormous.md")).unwrap();
    f.set_len(100 * 1024 * 1024).unwrap();
    drop(f);
    let t = Instant::now();
    let r = b.refused("conflicts/enormous.md");
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(message(&r).contains("104857600 bytes"), "{r}");
    // A 100 MB output (not a protocol file) is fine.
    let f = fs::File::create(b.p.path("demand-gen/video.bin")).unwrap();
    f.set_len(100 * 1024 * 1024).unwrap();
    drop(f);
    b.accepted("demand-gen/video.bin");
    assert_eq!(b.reviews(), 0);
    b.p.write("conflicts/huge.md", "# small now\n");
    b.accepted("conflicts/huge.md");
    assert_eq!(b.reviews(), 1);
}

#[test]
fn not_utf8_and_nul_bytes() {
    let mut b = Bus::new(&[]);
    fs::write(b.p.path("conflicts/latin1.md"), b"# Caf\xe9 conflict\n").unwrap();
    let r = b.refused("conflicts/latin1.md");
    assert!(message(&r).contains("UTF-8"), "{r}");
    fs::write(b.p.path("conflicts/nul.md"), b"# a\n\0b\n").unwrap();
    let r = b.refused("conflicts/nul.md");
    assert!(message(&r).contains("NUL"), "{r}");
    assert_eq!(r["line"], 2);
    assert_eq!(b.reviews(), 0);
}

#[test]
fn file_names_with_spaces_newlines_and_shell_metacharacters() {
    let p = Project::new();
    let cmd = format!("{} {{trigger}}", fixture("record-args.sh").display());
    let mut c = p.cmd();
    c.args(["run", "--agent-command", &cmd])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut daemon = Guard {
        child: Some(c.spawn().unwrap()),
    };
    wait_for(Duration::from_secs(20), "the daemon", || {
        (p.status_json()["daemon_running"] == true).then_some(())
    });
    let name = "a b $(touch pwned) `touch pwned2`; rm -rf x &&\nnext line.md";
    fs::write(p.path("conflicts").join(name), "# Odd name\n").unwrap();
    let args = wait_for(Duration::from_secs(20), "the agent to run", || {
        // Complete once the agent has written its last NUL.
        fs::read(p.root().join("args.bin"))
            .ok()
            .filter(|b| b.last() == Some(&0))
    });
    let args: Vec<&[u8]> = args.split(|b| *b == 0).filter(|a| !a.is_empty()).collect();
    assert_eq!(args.len(), 1, "one argument");
    assert_eq!(
        String::from_utf8_lossy(args[0]),
        format!("conflict: conflicts/{name}")
    );
    assert!(!p.ws().join("pwned").exists() && !p.root().join("pwned").exists());
    assert!(!p.ws().join("pwned2").exists());
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait(Duration::from_secs(10)).status.success());
}

#[test]
fn a_status_for_a_task_that_never_existed() {
    let mut b = Bus::new(&[]);
    b.p.write(
        "status/pipeline-manager.md",
        "agent: pipeline-manager\nphase: 2\ntask: CRM\ntask_id: t0042-imaginary\nstatus: complete\n",
    );
    let r = b.refused("status/pipeline-manager.md");
    assert!(message(&r).contains("t0042-imaginary"), "{r}");
}

#[test]
fn an_unwritable_state_directory_is_a_clear_error_at_start() {
    let p = Project::new();
    let blocker = p.root().join("not-a-dir");
    fs::write(&blocker, "").unwrap();
    let state = blocker.join("state");
    let out = p
        .cmd()
        .args(["run", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&state.display().to_string()) && err.contains("--state-dir"),
        "{err}"
    );
}
