//! The runner's side of a cluster scheduler: which agents' tasks run as
//! jobs, submitting a task's start under the name the engine journaled,
//! and following again, after a restart, the jobs a gtmd before submitted.

use super::slurm::{JobOptions, Submission};
use super::{Prepared, Runner, StartError};
use crate::agents::BackendName;
use crate::engine::TaskSpec;

impl Runner {
    /// The backend of agents that name none (`--backend`).
    pub fn set_default_backend(&mut self, backend: Option<BackendName>) {
        self.default_backend = backend;
    }

    /// Whether an agent's tasks run as jobs of the cluster scheduler (an
    /// agent with no runtime has an inbox, wherever it would have run).
    pub fn on_cluster(&self, agent: &str) -> bool {
        let backend = self
            .agents
            .get(agent)
            .and_then(|a| a.backend)
            .or(self.default_backend);
        backend == Some(BackendName::Slurm) && self.runtime(agent).is_some()
    }

    fn job_options(&self, agent: &str, timeout: std::time::Duration) -> JobOptions {
        let def = self.agents.get(agent);
        JobOptions {
            partition: def.and_then(|a| a.partition.clone()),
            mem: def.and_then(|a| a.mem.clone()),
            account: def.and_then(|a| a.account.clone()),
            timeout,
        }
    }

    /// Submit a task's start as the job `name`: its id comes back as a
    /// [`Submitted`](super::slurm::Submitted), a refusal by the scheduler as the task's exit.
    pub fn submit(&mut self, spec: &TaskSpec, name: &str) -> Result<(), StartError> {
        let submission = self.submission(spec)?;
        self.cluster.submit(&spec.id, name, submission)
    }

    fn submission(&self, spec: &TaskSpec) -> Result<Submission, StartError> {
        if self.closed {
            return Err(StartError::Stopping);
        }
        let Some(Prepared {
            process,
            reader,
            timeout,
            files,
        }) = self.prepare(spec)?
        else {
            return Err(StartError::Runtime(format!(
                "{} has no runtime to run as a job",
                spec.agent
            )));
        };
        super::write_files(files)?;
        Ok(Submission {
            process,
            options: self.job_options(&spec.agent, timeout),
            reader,
        })
    }

    /// Follow again a task's job after a restart. When the journal has no
    /// id, the job is looked up by its name (its id then comes back as a
    /// [`Submitted`](super::slurm::Submitted)) and, if it never was submitted and the task is still
    /// running, submitted now.
    pub fn reattach(
        &mut self,
        spec: &TaskSpec,
        name: &str,
        id: Option<&str>,
        submit_if_missing: bool,
    ) -> Result<(), StartError> {
        // The job reads the task's files as they are: only its output is
        // read here, from the task's log, once it ends. A job that may be
        // missing gets its files written again, from the journal, as the
        // same whole files (replaced at once, never seen half-written).
        let resubmit = if submit_if_missing && id.is_none() {
            Some(self.submission(spec)?)
        } else {
            None
        };
        let reader = self.reader_for(spec);
        let timeout = self.timeout(&spec.agent);
        self.cluster
            .reattach(&spec.id, name, id, timeout, reader, resubmit)
    }

    /// Jobs followed (queued or running on the cluster).
    pub fn jobs_count(&self) -> usize {
        self.cluster.count()
    }

    /// A job's exit file appeared.
    pub fn wake_jobs(&self) {
        self.cluster.wake();
    }
}
