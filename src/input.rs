//! Reading a file gtmd was pointed at, safely: regular files only, and never
//! more than a limit.
//!
//! A path on the command line (`--config`, `--playbook`), an agent
//! definition or a file on the bus can be anything: `/dev/zero` (endless: a
//! plain read grew to gigabytes in seconds), a FIFO (opening it blocks until
//! a writer comes, for ever), a directory. Every such read goes through
//! [`read_bounded`]: the file is opened without blocking, checked to be a
//! regular file on the opened descriptor itself (no window for a swap between
//! a check and the open), and read up to the limit.

use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Not there, no permission, an I/O error.
    Io(io::Error),
    /// A FIFO, device, socket or directory: what it is, for the message.
    NotRegular(&'static str),
    /// Over the limit: larger than this many bytes.
    TooLarge { limit: u64 },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "cannot be read: {e}"),
            ReadError::NotRegular(what) => write!(
                f,
                "is {what}, not a regular file; gtmd reads only regular files (or symlinks to one)"
            ),
            ReadError::TooLarge { limit } => write!(
                f,
                "is larger than {limit} bytes, the most gtmd reads of such a file (set --max-file-size to change the limit)"
            ),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        ReadError::Io(e)
    }
}

/// What a file that is not a regular file is, in words.
pub fn kind_of(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Open `path` (following symlinks) for reading if it is a regular file.
/// The open does not block on a FIFO, and the check is made on the opened
/// file, so what is read is what was checked.
pub fn open_regular(path: &Path) -> Result<(File, Metadata), ReadError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind_of(&meta)));
    }
    Ok((file, meta))
}

/// The bytes of the regular file at `path`, at most `limit` of them.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let (file, meta) = open_regular(path)?;
    if meta.len() > limit {
        return Err(ReadError::TooLarge { limit });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // One byte more than allowed tells a file that grew past the limit.
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_devices_fifos_and_directories_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        crate::os::mkfifo(&fifo).unwrap();
        for (path, what) in [
            (Path::new("/dev/zero"), "a character device"),
            (fifo.as_path(), "a FIFO (named pipe)"),
            (dir.path(), "a directory"),
        ] {
            match read_bounded(path, 1024) {
                Err(ReadError::NotRegular(w)) => assert_eq!(w, what),
                other => panic!("{}: {other:?}", path.display()),
            }
        }
    }

    #[test]
    fn a_file_over_the_limit_is_refused_and_one_at_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"12345").unwrap();
        assert_eq!(read_bounded(&f, 5).unwrap(), b"12345");
        assert!(matches!(
            read_bounded(&f, 4),
            Err(ReadError::TooLarge { limit: 4 })
        ));
        assert!(matches!(
            read_bounded(&dir.path().join("none"), 4),
            Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound
        ));
    }
}
