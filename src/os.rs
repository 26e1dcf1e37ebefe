//! The few things std cannot do safely, each behind a safe function.
//!
//! Everything else gtmd asks of the OS goes through std (`File::sync_data`,
//! `File::try_lock`, `std::io::pipe`). What is left has no std API: starting
//! an agent's process (its own module, [`spawn`]), signals to a process or a
//! process group, and giving freed heap back to the system. They are
//! gathered here so that `unsafe` appears in two small files whose every
//! block says why it is sound, and so that the Linux-only parts are easy to
//! find when gtmd is ported.

use std::fs;

pub mod spawn;

/// Ask every process of the group `pgid` to stop (SIGTERM).
pub fn term_group(pgid: i32) {
    signal_group(pgid, libc::SIGTERM);
}

/// Kill every process of the group `pgid` (SIGKILL).
pub fn kill_group(pgid: i32) {
    signal_group(pgid, libc::SIGKILL);
}

fn signal_group(pgid: i32, sig: libc::c_int) {
    // 0 or less would name our own group or every process we may signal.
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals that process group;
        // it takes no pointers. A group already gone is ESRCH, ignored.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// Kill one process (SIGKILL).
pub fn kill(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else {
        return;
    };
    if pid > 0 {
        // SAFETY: kill(2) takes no pointers; a process already gone is ESRCH.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// The processes (other than this one) whose environment holds the entry
/// `entry` (`NAME=value`), read from /proc. Processes that end or cannot be
/// read meanwhile are left out.
pub fn processes_with_env(entry: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            if pid == me {
                return None;
            }
            let environ = fs::read(e.path().join("environ")).ok()?;
            let found = environ.split(|b| *b == 0).any(|kv| kv == entry.as_bytes());
            found.then_some(pid)
        })
        .collect()
}

/// Give the heap glibc keeps free back to the system (a no-op elsewhere).
pub fn release_free_memory() {
    // SAFETY: malloc_trim only releases memory glibc's allocator holds free;
    // it takes no pointers and is safe to call from any thread.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Make a FIFO at `path` (tests of the refusal to read one; std's mkfifo
/// is not stable yet).
#[cfg(test)]
pub fn mkfifo(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_found_by_an_entry_of_its_environment() {
        let mark = format!("GTMD_OS_TEST_MARK={}", std::process::id());
        let (name, value) = mark.split_once('=').unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env(name, value)
            .spawn()
            .unwrap();
        // Until the child has exec'd, /proc shows the environment it was forked with.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut found = processes_with_env(&mark);
        while found.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
            found = processes_with_env(&mark);
        }
        kill(child.id());
        let _ = child.wait();
        assert_eq!(found, vec![child.id()]);
    }
}
