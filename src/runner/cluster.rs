//! The runner's side of a cluster scheduler: which agents' tasks run as
//! jobs, submitting a task's start under the name the engine journaled,
//! and following again, after a restart, the jobs a gtmd before submitted.

use super::slurm::{Found, JobOptions};
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

    /// Submit a task's start as the job `name`; its id.
    pub fn submit(&mut self, spec: &TaskSpec, name: &str) -> Result<String, StartError> {
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
        let options = self.job_options(&spec.agent, timeout);
        let id = self
            .cluster
            .submit(&spec.id, name, &process, &options, reader)?;
        if crate::test_hooks::die_after_submit() {
            tracing::error!(job = %id, "GTMD_DEBUG_DIE_AFTER_SUBMIT: dying before the job's id is journaled");
            std::process::exit(137);
        }
        Ok(id)
    }

    /// Follow again a task's job after a restart; the id to journal, when
    /// the journal has none yet (the job found by its name, or submitted
    /// now because it never was).
    pub fn reattach(
        &mut self,
        spec: &TaskSpec,
        name: &str,
        id: Option<&str>,
        submit_if_missing: bool,
    ) -> Result<Option<String>, StartError> {
        // The job reads the task's files as they are: only its output is
        // read here, from the task's log, once it ends.
        let reader = self.reader_for(spec);
        let timeout = self.timeout(&spec.agent);
        match self.cluster.reattach(&spec.id, name, id, timeout, reader) {
            // Found by its name: its id goes into the journal now.
            Found::Following(found) if id.is_none() && !found.is_empty() => Ok(Some(found)),
            Found::Following(_) => Ok(None),
            Found::Missing if submit_if_missing => self.submit(spec, name).map(Some),
            Found::Missing => Err(StartError::Runtime(format!(
                "its job {name} is not known to the scheduler"
            ))),
        }
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
