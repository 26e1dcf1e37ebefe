//! Writing a task's prompt and context files off the event loop.
//!
//! Why: each is a new file (a temporary, renamed into place), and creating a
//! file waits on the file system's own journal, which took 0.2-0.9 ms per
//! file here, on the path from a file landing to its agent running. The
//! writer's thread writes them while the loop starts the task's process; the
//! process execs only once they are written, through a gate like the
//! journal's (a byte on a pipe: `1` when they are written, `0` when they
//! could not be, and the process then exits without exec).

use super::StartError;
use crate::fsutil::{write_replaceable, WriteError};
use std::io::{self, PipeReader, PipeWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Files and what each is to hold.
pub type Contents = Vec<(PathBuf, Vec<u8>)>;

struct Job {
    files: Contents,
    written: PipeWriter,
    failed: oneshot::Sender<WriteError>,
}

/// The writer's thread; it ends when the runner drops this.
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// `None` when the thread cannot start: files are then written inline.
    pub fn start() -> Option<Writer> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("task-files".into())
            .spawn(move || {
                for job in rx {
                    tracing::trace!(target: "gtmd::stage", "writing task files");
                    // A byte either way: the end of the pipe alone would
                    // read as gtmd gone rather than as files not written.
                    // A process already gone closed its end: nothing to tell.
                    let byte = match write_now(job.files) {
                        Ok(()) => b"1",
                        Err(e) => {
                            let _ = job.failed.send(e);
                            b"0"
                        }
                    };
                    let _ = (&job.written).write_all(byte);
                }
            });
        match spawned {
            Ok(_) => Some(Writer { jobs }),
            Err(e) => {
                tracing::warn!("cannot start the task-file writer ({e}); task files are written before each start");
                None
            }
        }
    }

    /// Have `files` written; the gate opens once they are, and the receiver
    /// says why when they could not be.
    pub fn submit(
        &self,
        files: Contents,
    ) -> Result<(Option<PipeReader>, Option<oneshot::Receiver<WriteError>>), StartError> {
        let (gate, written) = io::pipe().map_err(StartError::Gate)?;
        let (failed, why) = oneshot::channel();
        let job = Job {
            files,
            written,
            failed,
        };
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            // The thread is gone: write them here.
            write_files(job.files)?;
            return Ok((None, None));
        }
        Ok((Some(gate), Some(why)))
    }
}

/// Write task files now. Not fsynced: after a crash the task is started
/// again and its files rewritten from the journal; the fsync would delay
/// every start.
pub fn write_files(files: Contents) -> Result<(), StartError> {
    write_now(files).map_err(StartError::TaskFile)
}

fn write_now(files: Contents) -> Result<(), WriteError> {
    for (path, bytes) in files {
        write_replaceable(&path, &bytes)?;
    }
    tracing::trace!(target: "gtmd::stage", "task files written");
    Ok(())
}
