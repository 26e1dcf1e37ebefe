//! What commands print, ending quietly when the reader has gone.
//!
//! Rust ignores SIGPIPE, so `gtmd status | head -1` gets EPIPE on its next
//! write once `head` has exited, and `println!` turns that into a panic (exit
//! 101). Restoring SIGPIPE's default would kill the process on that write
//! instead, which must never happen to the daemon or to a foreground run with
//! agent processes to stop first. So, as ripgrep does, commands print through
//! here: a closed pipe is remembered ([`closed`]) and returned as an error,
//! which `main` turns into a quiet exit, and a foreground run stops as it
//! would on Ctrl-C.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write to stdout or stderr found the reader gone.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Write `text` to stdout, whole, and flush it.
pub fn stdout(text: &str) -> io::Result<()> {
    write(&mut io::stdout().lock(), text)
}

/// Write `text` to stderr. Nothing can be said about a failure to write
/// there, so only a closed pipe is remembered.
pub fn stderr(text: &str) {
    let _ = write(&mut io::stderr().lock(), text);
}

fn write(w: &mut impl Write, text: &str) -> io::Result<()> {
    let written = w.write_all(text.as_bytes()).and_then(|()| w.flush());
    if let Err(e) = &written {
        if e.kind() == io::ErrorKind::BrokenPipe {
            CLOSED.store(true, Ordering::Release);
        }
    }
    written
}

/// Whether the reader of stdout or stderr has gone: the command's output
/// has nowhere to go, so it should end.
pub fn closed() -> bool {
    CLOSED.load(Ordering::Acquire)
}

/// Whether an error comes from writing into a closed pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// `println!` for command output: `outln!(...)?` stops at a closed pipe.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` for messages of commands, never a panic.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::stderr(&format!("{}\n", format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_an_error_that_is_remembered() {
        let (read_end, mut f) = io::pipe().unwrap();
        drop(read_end);
        let e = write(&mut f, "x\n").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert!(closed());
        assert!(is_broken_pipe(&anyhow::Error::new(e).context("printing")));
    }
}
