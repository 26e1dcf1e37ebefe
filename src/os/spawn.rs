//! Starting an agent's process without copying gtmd's address space.
//!
//! A `fork` of the daemon copies the page tables of its heap, its threads'
//! stacks and its mappings, and the child's `exec` then throws the copy
//! away: measured here at 0.8-2.3 ms from `fork` to `exec` for a process of
//! 8 MiB with five threads, against 0.15-0.25 ms for `posix_spawn`, which
//! shares the parent's memory until the exec (`vfork`). That copy was the
//! largest part of a reaction's time above a bare `inotifywait` loop's
//! (issue 17). `posix_spawn` itself cannot do what a task's child must do
//! before its exec: set its parent-death signal and wait at its gates until
//! its journal entry is durable and its files are written. So this is
//! `posix_spawn`'s technique written out: `clone(2)` with `CLONE_VM` and
//! `CLONE_VFORK` on a small stack of the child's own. Until it execs, the
//! child shares gtmd's memory: it reads only what was prepared for it
//! here, makes only system calls, and reports a failure in a shared word.
//! The calling thread is suspended until the exec (std's spawn waits for it
//! too); gtmd's other threads run on, and they are the ones that open the
//! gates.
//!
//! The child is waited for through a pidfd (`CLONE_PIDFD`), readable in
//! tokio's reactor when the process ends, so no SIGCHLD handling is needed.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicI32, Ordering};

/// What a task's process is started with.
pub struct Launch<'a> {
    /// The program (searched in the `PATH` of `env` when it has no `/`)
    /// and its arguments.
    pub argv: &'a [String],
    /// The whole environment of the process.
    pub env: &'a [(OsString, OsString)],
    /// Its working directory.
    pub cwd: &'a Path,
    /// Where its stdout and stderr go (stdin is /dev/null).
    pub output: &'a OwnedFd,
    /// It execs only after reading the byte `1` from each; any other byte,
    /// or the end of a gate's input, and it exits without exec.
    pub gates: &'a [io::PipeReader],
}

/// A process started by [`spawn`]: the leader of its own process group,
/// killed (SIGKILL) when gtmd dies.
pub struct Child {
    pid: u32,
    pidfd: OwnedFd,
    status: Option<ExitStatus>,
}

impl Child {
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Wait for the process to end (cancel-safe: call again after a
    /// cancelled wait). Must run inside tokio's runtime.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        use tokio::io::{unix::AsyncFd, Interest};
        if let Some(status) = self.status {
            return Ok(status);
        }
        // SAFETY: the pidfd is owned by `self`, which this borrow keeps
        // alive and unchanged until `fd` is dropped at the end of the call.
        let fd =
            unsafe { AsyncFd::register_with_interest(self.pidfd.as_raw_fd(), Interest::READABLE) }?;
        loop {
            let mut ready = fd.readable().await?;
            if let Some(status) = reap(&self.pidfd, libc::WNOHANG)? {
                self.status = Some(status);
                return Ok(status);
            }
            ready.clear_ready();
        }
    }
}

/// Start a process as [`Launch`] says, in a new process group, with default
/// signal dispositions and an empty signal mask, and return once it has
/// exec'd. An error says why it could not: the program not found, a gate
/// that did not open (`ECANCELED` for a byte other than `1`, `EPIPE` for an
/// end of input), gtmd dying meanwhile (`ESRCH`), or the failed step's own
/// error.
pub fn spawn(launch: &Launch) -> io::Result<Child> {
    let setup = ChildSetup::prepare(launch)?;
    let stack = Stack::new()?;
    // Every signal stays blocked from the clone until the child has put
    // back the default dispositions: a signal arriving before would run one
    // of gtmd's handlers in the child, on memory it shares with gtmd.
    let old_mask = block_all_signals();
    let mut pidfd: libc::c_int = -1;
    // SAFETY: `child_main` gets a pointer to `setup`, which lives on this
    // thread's stack until `clone` returns, and CLONE_VFORK keeps this
    // thread suspended until the child has exec'd or exited, so the child
    // never sees it freed. The child runs on `stack` (mapped for it, with
    // a guard page below) and only makes system calls (see `child_main`).
    // With CLONE_PIDFD the kernel stores the child's pidfd in `pidfd`.
    let pid = unsafe {
        libc::clone(
            child_main,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
            (&raw const setup).cast_mut().cast(),
            &raw mut pidfd,
        )
    };
    let clone_error = io::Error::last_os_error();
    restore_signal_mask(&old_mask);
    drop(stack);
    if pid < 0 {
        return Err(clone_error);
    }
    // SAFETY: the kernel returned a new pidfd, owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let failed = setup.error.load(Ordering::Acquire);
    if failed != 0 {
        // The child has exited (it reports only right before `_exit`);
        // collect it so no zombie stays.
        let _ = reap(&pidfd, 0);
        return Err(io::Error::from_raw_os_error(failed));
    }
    Ok(Child {
        pid: pid as u32,
        pidfd,
        status: None,
    })
}

/// Everything the child needs, made before the clone so that the child
/// allocates nothing: C strings, the pointer arrays `execve` takes, file
/// descriptors.
struct ChildSetup {
    program: CString,
    argv: Vec<*const libc::c_char>,
    /// argv for `/bin/sh` when the program is a script without `#!`
    /// (`execve` says ENOEXEC; `execvp` runs the shell then, so does this).
    sh_argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    cwd: CString,
    stdin: OwnedFd,
    output: RawFd,
    gates: Vec<RawFd>,
    parent: libc::pid_t,
    /// The child's errno when a step failed, else 0.
    error: AtomicI32,
    // The strings the pointers above point into.
    _strings: Vec<CString>,
}

impl ChildSetup {
    fn prepare(launch: &Launch) -> io::Result<ChildSetup> {
        let name = launch
            .argv
            .first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no program to run"))?;
        let path = find_program(OsStr::new(name), launch.env, launch.cwd)?;
        let program = c_string(path.as_os_str().as_bytes(), || "the program's path".into())?;
        let mut strings = Vec::new();
        let mut argv = Vec::with_capacity(launch.argv.len() + 1);
        for (i, arg) in launch.argv.iter().enumerate() {
            let c = c_string(arg.as_bytes(), || format!("argument {i}"))?;
            argv.push(c.as_ptr());
            strings.push(c);
        }
        argv.push(std::ptr::null());
        let sh = c"/bin/sh".to_owned();
        let mut sh_argv = vec![sh.as_ptr(), program.as_ptr()];
        sh_argv.extend(&argv[1..]);
        strings.push(sh);
        let mut envp = Vec::with_capacity(launch.env.len() + 1);
        for (k, v) in launch.env {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            let c = c_string(&kv, || {
                format!("the environment variable {}", k.to_string_lossy())
            })?;
            envp.push(c.as_ptr());
            strings.push(c);
        }
        envp.push(std::ptr::null());
        Ok(ChildSetup {
            program,
            argv,
            sh_argv,
            envp,
            cwd: c_string(launch.cwd.as_os_str().as_bytes(), || {
                "the working directory".into()
            })?,
            stdin: std::fs::File::open("/dev/null")?.into(),
            output: launch.output.as_raw_fd(),
            gates: {
                let mut fds: Vec<RawFd> = launch.gates.iter().map(|g| g.as_raw_fd()).collect();
                fds.sort_unstable();
                fds
            },
            parent: std::process::id() as libc::pid_t,
            error: AtomicI32::new(0),
            _strings: strings,
        })
    }
}

/// `bytes` for the kernel, which ends a string at its first NUL: one in
/// the middle is refused, naming `what` holds it (argument 0 is the program).
fn c_string(bytes: &[u8], what: impl FnOnce() -> String) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} holds a NUL byte, which no program can be given", what()),
        )
    })
}

/// Where `name` is: itself when it has a `/` (relative to `cwd`, as the
/// child will see it), else the first executable file of that name in the
/// directories of `PATH` (from `env`; `/bin:/usr/bin` without one, as
/// `execvp`).
fn find_program(name: &OsStr, env: &[(OsString, OsString)], cwd: &Path) -> io::Result<PathBuf> {
    if name.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(name));
    }
    let path_var = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_os_str())
        .unwrap_or(OsStr::new("/bin:/usr/bin"));
    find_on_path(name, path_var, cwd)
}

/// The first executable file named `name` in the directories of `path_var`
/// (a `PATH` value; a relative or empty entry is relative to `cwd`); an
/// error says whether none was found or one only without permission to
/// execute. gtmd's one search of a `PATH`.
pub fn find_on_path(name: &OsStr, path_var: &OsStr, cwd: &Path) -> io::Result<PathBuf> {
    if name.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the program's name is empty",
        ));
    }
    let mut denied = false;
    for dir in std::env::split_paths(path_var) {
        let candidate = cwd.join(dir).join(name);
        match std::fs::metadata(&candidate) {
            Ok(m) if executable(&m) => return Ok(candidate),
            Ok(m) if m.is_file() => denied = true,
            _ => {}
        }
    }
    Err(if denied {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is found in PATH only without permission to execute",
                name.to_string_lossy()
            ),
        )
    } else {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no {} in PATH ({})",
                name.to_string_lossy(),
                path_var.to_string_lossy()
            ),
        )
    })
}

/// Whether `path` is a file its owner, group or others may execute.
pub fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| executable(&m))
}

fn executable(m: &std::fs::Metadata) -> bool {
    m.is_file() && m.permissions().mode() & 0o111 != 0
}

/// The child's side, between the clone and the exec. It shares gtmd's
/// memory, so it must not allocate, lock, unwind or touch anything but
/// `ChildSetup`: each step is one system call through libc's thin wrappers.
/// On a failed step it leaves the errno in `setup.error` and exits 127.
extern "C" fn child_main(setup: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `setup` is the `ChildSetup` that `spawn` keeps alive and
    // unchanged until this child has exec'd or exited.
    let setup = unsafe { &*(setup as *const ChildSetup) };
    // SAFETY: see `child_steps`.
    let errno = unsafe { child_steps(setup) };
    setup.error.store(errno.max(1), Ordering::Release);
    // SAFETY: _exit(2) ends the child without running gtmd's exit handlers.
    unsafe { libc::_exit(127) }
}

/// # Safety
/// Only from `child_main`, in the cloned child.
unsafe fn child_steps(s: &ChildSetup) -> libc::c_int {
    let errno = || unsafe { *libc::__errno_location() };
    // Default dispositions for every signal gtmd handles (and SIGPIPE,
    // which Rust ignores): the child has its own copy of the handler table
    // (no CLONE_SIGHAND), so this does not touch gtmd's.
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } != 0 {
            continue; // a signal glibc keeps for itself
        }
        if sig == libc::SIGPIPE
            || (old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN)
        {
            let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
            dfl.sa_sigaction = libc::SIG_DFL;
            unsafe { libc::sigaction(sig, &dfl, std::ptr::null_mut()) };
        }
    }
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        return errno();
    }
    // gtmd may have died before the prctl, and then no signal comes: the
    // child was handed to another parent.
    if unsafe { libc::getppid() } != s.parent {
        return libc::ESRCH;
    }
    if unsafe { libc::setpgid(0, 0) } != 0 {
        return errno();
    }
    for (from, to) in [(s.stdin.as_raw_fd(), 0), (s.output, 1), (s.output, 2)] {
        // dup2 onto itself would leave close-on-exec set.
        let r = if from == to {
            unsafe { libc::fcntl(to, libc::F_SETFD, 0) }
        } else {
            unsafe { libc::dup2(from, to) }
        };
        if r < 0 {
            return errno();
        }
    }
    // Everything else gtmd has open goes now rather than at the exec: a
    // copy of a gate's write end held here would keep this child waiting
    // for ever when its writer closes unwritten, and copies of other
    // tasks' pipes would delay the end of their output.
    let mut from: libc::c_uint = 3;
    for &keep in &s.gates {
        let keep = keep as libc::c_uint;
        if keep > from {
            unsafe { close_range(from, keep - 1) };
        }
        from = from.max(keep + 1);
    }
    unsafe { close_range(from, libc::c_uint::MAX) };
    if unsafe { libc::chdir(s.cwd.as_ptr()) } != 0 {
        return errno();
    }
    for &gate in &s.gates {
        let mut byte = 0u8;
        loop {
            match unsafe { libc::read(gate, (&raw mut byte).cast(), 1) } {
                1 if byte == b'1' => break,
                1 => return libc::ECANCELED,
                0 => return libc::EPIPE,
                _ if errno() == libc::EINTR => {}
                _ => return errno(),
            }
        }
    }
    let mut empty: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execve(s.program.as_ptr(), s.argv.as_ptr(), s.envp.as_ptr());
    }
    if errno() == libc::ENOEXEC {
        unsafe { libc::execve(s.sh_argv[0], s.sh_argv.as_ptr(), s.envp.as_ptr()) };
    }
    errno()
}

/// close_range(2) (Linux 5.9), called directly: glibc has had a wrapper
/// only since 2.34.
///
/// # Safety
/// Closes descriptors others may own: only in the child, before its exec.
unsafe fn close_range(first: libc::c_uint, last: libc::c_uint) {
    unsafe { libc::syscall(libc::SYS_close_range, first, last, 0 as libc::c_uint) };
}

/// The child's stack: an anonymous mapping with a guard page at its low
/// end, so an overflow faults instead of writing over gtmd's memory.
struct Stack {
    base: *mut libc::c_void,
    len: usize,
}

/// Enough for `child_steps` and libc's wrappers many times over.
const STACK_LEN: usize = 128 * 1024;

impl Stack {
    fn new() -> io::Result<Stack> {
        let page = 4096;
        // SAFETY: a fresh anonymous private mapping; no existing memory is
        // touched. The lowest page is then made inaccessible.
        unsafe {
            let base = libc::mmap(
                std::ptr::null_mut(),
                STACK_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            );
            if base == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            let stack = Stack {
                base,
                len: STACK_LEN,
            };
            if libc::mprotect(base, page, libc::PROT_NONE) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(stack)
        }
    }

    /// The stack grows down: the child starts at the top.
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of the mapping, which is 16-byte aligned
        // (page-aligned base, length a multiple of the page).
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; the child that used it has
        // exec'd or exited (CLONE_VFORK), so nothing runs on it.
        unsafe {
            libc::munmap(self.base, self.len);
        }
    }
}

fn block_all_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; the calls only fill it and change
    // this thread's mask.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    }
}

fn restore_signal_mask(old: &libc::sigset_t) {
    // SAFETY: `old` is the mask `block_all_signals` saved.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut());
    }
}

/// Collect the child's exit status through its pidfd: `None` with WNOHANG
/// while it runs.
fn reap(pidfd: &OwnedFd, flags: libc::c_int) -> io::Result<Option<ExitStatus>> {
    loop {
        // SAFETY: siginfo_t is plain data that waitid fills.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own pidfd with a valid siginfo_t.
        let r = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED | flags,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: after a successful waitid the pid and status fields are set
        // (a pid of 0 with WNOHANG: nothing has ended yet).
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        // Back into the wait(2) status word that ExitStatus wraps.
        let raw = match info.si_code {
            libc::CLD_EXITED => (status & 0xff) << 8,
            libc::CLD_DUMPED => status | 0x80,
            _ => status,
        };
        return Ok(Some(ExitStatus::from_raw(raw)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    struct Run {
        output: String,
        status: io::Result<ExitStatus>,
        pid: Option<u32>,
    }

    fn env() -> Vec<(OsString, OsString)> {
        std::env::vars_os().collect()
    }

    /// Start `argv` in `cwd` with `env`, gates opened with `gate_bytes`
    /// (None: the gate's writer is closed unwritten), and collect its output.
    async fn run(
        argv: &[&str],
        env: &[(OsString, OsString)],
        cwd: &Path,
        gate_bytes: &[Option<u8>],
    ) -> Run {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let (mut read, write) = io::pipe().unwrap();
        let write: OwnedFd = write.into();
        let mut readers = Vec::new();
        let mut writers = Vec::new();
        for _ in gate_bytes {
            let (r, w) = io::pipe().unwrap();
            readers.push(r);
            writers.push(w);
        }
        // The gates open from another thread while this one is suspended in
        // the spawn, as in gtmd.
        let gate_bytes = gate_bytes.to_vec();
        let opener = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            for (mut w, b) in writers.into_iter().zip(gate_bytes) {
                if let Some(b) = b {
                    let _ = w.write_all(&[b]);
                }
            }
        });
        let spawned = spawn(&Launch {
            argv: &argv,
            env,
            cwd,
            output: &write,
            gates: &readers,
        });
        drop(write);
        opener.join().unwrap();
        let (status, pid) = match spawned {
            Ok(mut child) => (child.wait().await, Some(child.id())),
            Err(e) => (Err(e), None),
        };
        let mut output = String::new();
        read.read_to_string(&mut output).unwrap();
        Run {
            output,
            status,
            pid,
        }
    }

    #[tokio::test]
    async fn a_program_runs_with_its_arguments_environment_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = env();
        env.push(("GTMD_SPAWN_TEST".into(), "a value with spaces".into()));
        let r = run(
            &[
                "sh",
                "-c",
                "printf '%s|%s|%s|' \"$1\" \"$GTMD_SPAWN_TEST\" \"$(pwd)\"; echo err >&2; exit 7",
                "sh",
                "an argument; not shell",
            ],
            &env,
            dir.path(),
            &[Some(b'1'), Some(b'1')],
        )
        .await;
        let status = r.status.unwrap();
        assert_eq!(status.code(), Some(7));
        let canonical = dir.path().canonicalize().unwrap();
        assert_eq!(
            r.output,
            format!(
                "an argument; not shell|a value with spaces|{}|err\n",
                canonical.display()
            )
        );
    }

    #[tokio::test]
    async fn the_process_leads_its_own_group_with_default_signals() {
        let dir = tempfile::tempdir().unwrap();
        // The programs read their own /proc entries: a shell reading its
        // own would catch it blocking every signal around its forks (dash
        // does), which says nothing about what it was started with.
        let r = run(
            &["cut", "-d ", "-f1,5", "/proc/self/stat"],
            &env(),
            dir.path(),
            &[],
        )
        .await;
        assert!(r.status.unwrap().success(), "{}", r.output);
        let ids: Vec<u32> = r
            .output
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(Some(ids[0]), r.pid);
        assert_eq!(ids[1], ids[0], "not the leader of its own group");
        // SIGPIPE is ignored in gtmd (Rust's runtime); the child must see
        // it at its default, with nothing blocked.
        let r = run(
            &["grep", "-E", "^(SigBlk|SigIgn)", "/proc/self/status"],
            &env(),
            dir.path(),
            &[],
        )
        .await;
        assert!(r.status.unwrap().success(), "{}", r.output);
        let mut lines = r.output.lines();
        let blocked = lines.next().unwrap();
        assert!(blocked.ends_with("0000000000000000"), "{blocked}");
        let ignored =
            u64::from_str_radix(lines.next().unwrap().rsplit('\t').next().unwrap(), 16).unwrap();
        assert_eq!(
            ignored & (1 << (libc::SIGPIPE - 1)),
            0,
            "SIGPIPE still ignored"
        );
    }

    #[tokio::test]
    async fn the_process_gets_no_open_file_of_gtmds_but_its_three() {
        let dir = tempfile::tempdir().unwrap();
        // Open without close-on-exec, as a library might: still not passed on.
        let kept = std::fs::File::open("/dev/null").unwrap();
        let fd = kept.as_raw_fd();
        // SAFETY: fcntl on a descriptor this test owns.
        assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
        // Without gates and with one (the descriptors around a gate are
        // closed in two ranges).
        for gates in [&[][..], &[Some(b'1')][..]] {
            let r = run(&["sh", "-c", "ls /proc/$$/fd"], &env(), dir.path(), gates).await;
            assert!(r.status.unwrap().success(), "{}", r.output);
            let mut fds: Vec<u32> = r
                .output
                .split_whitespace()
                .map(|f| f.parse().unwrap())
                .collect();
            fds.sort_unstable();
            assert_eq!(
                fds,
                [0, 1, 2],
                "gtmd's fd {fd} is open without close-on-exec"
            );
        }
        drop(kept);
    }

    #[tokio::test]
    async fn a_signal_is_the_exit_status() {
        let dir = tempfile::tempdir().unwrap();
        let r = run(&["sh", "-c", "kill -TERM $$"], &env(), dir.path(), &[]).await;
        assert_eq!(r.status.unwrap().signal(), Some(libc::SIGTERM));
    }

    #[tokio::test]
    async fn a_gate_that_does_not_open_means_no_exec() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let script = format!("touch '{}'", marker.display());
        for (bytes, errno) in [
            (vec![Some(b'1'), Some(b'0')], libc::ECANCELED),
            (vec![None], libc::EPIPE),
        ] {
            let r = run(&["sh", "-c", &script], &env(), dir.path(), &bytes).await;
            let e = r.status.unwrap_err();
            assert_eq!(e.raw_os_error(), Some(errno), "{e}");
            assert!(!marker.exists(), "the program ran with its gate shut");
        }
    }

    #[tokio::test]
    async fn a_missing_program_or_directory_is_an_error_not_a_process() {
        let dir = tempfile::tempdir().unwrap();
        let r = run(&["gtmd-no-such-program"], &env(), dir.path(), &[]).await;
        let e = r.status.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        assert!(e.to_string().contains("gtmd-no-such-program"), "{e}");

        let gone = dir.path().join("gone");
        let r = run(&["true"], &env(), &gone, &[]).await;
        assert_eq!(r.status.unwrap_err().raw_os_error(), Some(libc::ENOENT));

        let r = run(&["./not-there"], &env(), dir.path(), &[]).await;
        assert_eq!(r.status.unwrap_err().raw_os_error(), Some(libc::ENOENT));
    }

    #[tokio::test]
    async fn a_nul_byte_is_refused_naming_where_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let r = run(&["true", "ok", "a\0b"], &env(), dir.path(), &[]).await;
        let e = r.status.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert!(
            e.to_string().starts_with("argument 2 holds a NUL byte"),
            "{e}"
        );
        assert_eq!(r.pid, None);

        let mut with_nul = env();
        with_nul.push(("GTMD_TASK".into(), "a\0b".into()));
        let e = run(&["true"], &with_nul, dir.path(), &[])
            .await
            .status
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("the environment variable GTMD_TASK holds"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_script_without_an_interpreter_line_runs_in_sh() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("agent");
        std::fs::write(&script, "echo \"from sh: $1\"\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let r = run(&["./agent", "x"], &env(), dir.path(), &[]).await;
        assert!(r.status.unwrap().success());
        assert_eq!(r.output, "from sh: x\n");
    }

    #[test]
    fn the_program_is_searched_in_the_path_of_its_own_environment() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let tool = bin.join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        let env = vec![(
            "PATH".into(),
            OsString::from(format!("/nonexistent:{}", bin.display())),
        )];
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = find_program(OsStr::new("tool"), &env, dir.path()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            find_program(OsStr::new("tool"), &env, dir.path()).unwrap(),
            tool
        );
        // A relative PATH entry is relative to the child's directory.
        let env = vec![("PATH".into(), OsString::from("bin"))];
        assert_eq!(
            find_program(OsStr::new("tool"), &env, dir.path()).unwrap(),
            tool
        );
    }
}
