//! From a path on disk to an engine event: is it ours to read, is it new, and
//! what does it say?
//!
//! Every refusal a file can earn before the engine sees it happens here (too
//! large, not UTF-8, NUL bytes, a symlink out of the workspace, bad YAML), so
//! the engine gets either a parsed protocol message or a [`Diagnostic`]. A
//! version is identified by its content hash: a touch, a repeated event or a
//! rescan of an unchanged file yields nothing.

mod odd;
mod parse;

pub use parse::parse;

use crate::diagnostic::Diagnostic;
use crate::engine::{CancelRequest, FileContent, FileEntry, RunRequest};
use crate::gate_checks::WorkspaceView;
use crate::input::{read_bounded, ReadError};
use crate::protocol::{self, classify, is_ignored, FileKind};
use odd::not_regular;
use parse::{is_protocol, kind_name};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// What looking at one path found.
#[derive(Debug)]
pub enum Observed {
    /// Not there (any more).
    Missing,
    /// A directory: its files must be looked at.
    Dir,
    /// Editor or tool temporary file, dot-file, the state directory.
    Ignored,
    /// Written by gtmd itself (inbox, run records): not part of the protocol.
    Owned,
    /// The same content as the version already acted on.
    Unchanged,
    /// A protocol file caught empty right after a change: read it later.
    Settling,
    /// The same content with a new modification time (touched, or rewritten
    /// unchanged): worth recording so the next start need not read it again.
    Touched { mtime_ns: u64 },
    /// A version gtmd has not acted on. Its content is boxed: it is by far
    /// the largest variant, and most observations are of the small ones.
    New {
        hash: String,
        size: u64,
        mtime_ns: u64,
        content: Box<FileContent>,
    },
}

pub struct Ingest {
    root: PathBuf,
    /// The canonical root, to tell where symlinks lead.
    canonical_root: PathBuf,
    /// The state directory relative to the root, when it lies inside it.
    state_rel: Option<String>,
    pub max_protocol_size: u64,
}

impl Ingest {
    pub fn new(root: &Path, state_dir: &Path, max_protocol_size: u64) -> Ingest {
        let canonical_root = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let state_rel = fs::canonicalize(state_dir)
            .ok()
            .and_then(|s| s.strip_prefix(&canonical_root).ok().map(rel_string))
            .filter(|s| !s.is_empty());
        Ingest {
            root: root.to_path_buf(),
            canonical_root,
            state_rel,
            max_protocol_size,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The state directory under the root as the watcher names it, when it
    /// lies in the workspace.
    pub fn state_dir_in_root(&self) -> Option<PathBuf> {
        self.state_rel.as_ref().map(|s| self.root.join(s))
    }

    /// The workspace was replaced: symlink checks use the new directory.
    pub fn refresh_root(&mut self) {
        if let Ok(c) = fs::canonicalize(&self.root) {
            self.canonical_root = c;
        }
    }

    /// The workspace-relative form of a path the watcher reported.
    pub fn relative(&self, abs: &Path) -> Option<String> {
        let rel = abs
            .strip_prefix(&self.root)
            .or_else(|_| abs.strip_prefix(&self.canonical_root))
            .ok()?;
        if rel.as_os_str().is_empty() {
            return None;
        }
        Some(rel_string(rel))
    }

    /// Whether a path is the exit file a cluster job's wrapper writes
    /// (`STATE/jobs/<job>.exit`, when the state directory is in the
    /// workspace).
    pub fn is_job_exit(&self, rel: &str) -> bool {
        self.state_rel.as_deref().is_some_and(|s| {
            rel.strip_prefix(s)
                .and_then(|r| r.strip_prefix("/jobs/"))
                .is_some_and(|f| !f.contains('/') && f.ends_with(".exit"))
        })
    }

    pub fn ignored(&self, rel: &str) -> bool {
        if is_ignored(rel) {
            return true;
        }
        match &self.state_rel {
            Some(s) => rel == s || rel.starts_with(&format!("{s}/")),
            None => false,
        }
    }

    /// Look at one path. With `known`, a file whose size and mtime match is
    /// taken as unchanged without reading it (the start-up and rescan fast path).
    pub fn observe(&self, rel: &str, known: Option<&FileEntry>, trust_mtime: bool) -> Observed {
        if self.ignored(rel) {
            return Observed::Ignored;
        }
        let kind = classify(rel);
        if matches!(kind, FileKind::Inbox | FileKind::RunRecord) {
            return Observed::Owned;
        }
        let path = self.root.join(rel);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(_) => {
                return match self.resolve_lossy(rel) {
                    Some(real) => self.observe_bad_name(rel, &real, known),
                    None => Observed::Missing,
                }
            }
        };
        if meta.file_type().is_symlink() {
            return self.observe_symlink(rel, &path, &meta, known, &kind);
        }
        if meta.is_dir() {
            return Observed::Dir;
        }
        if !meta.is_file() {
            return not_regular(rel, &meta, known);
        }
        let size = meta.len();
        let mtime_ns = mtime_ns(&meta);
        if trust_mtime {
            if let Some(k) = known {
                if k.size == size && k.mtime_ns == mtime_ns {
                    return Observed::Unchanged;
                }
            }
        }
        if is_protocol(&kind) {
            self.observe_protocol(rel, &path, &kind, &meta, known)
        } else {
            observe_plain(&path, mtime_ns, known)
        }
    }

    /// A protocol file (status, conflict, decision, gate, request): read
    /// within the size limit, hashed, parsed.
    fn observe_protocol(
        &self,
        rel: &str,
        path: &Path,
        kind: &FileKind,
        meta: &fs::Metadata,
        known: Option<&FileEntry>,
    ) -> Observed {
        let (size, mtime_ns) = (meta.len(), mtime_ns(meta));
        if size > self.max_protocol_size {
            let hash = format!("oversize:{size}:{mtime_ns}");
            if known.is_some_and(|k| k.hash == hash) {
                return Observed::Unchanged;
            }
            let d = Diagnostic::new(
                rel,
                None,
                format!(
                    "the file is {size} bytes; {} files may be at most {} bytes (set --max-file-size to change the limit)",
                    kind_name(kind),
                    self.max_protocol_size
                ),
            );
            return Observed::New {
                hash,
                size,
                mtime_ns,
                content: Box::new(FileContent::Rejected { diagnostic: d }),
            };
        }
        let bytes = match read_bounded(path, self.max_protocol_size) {
            Ok(b) => b,
            // It grew past the limit since the stat above: still being
            // written; its size is judged once it settles.
            Err(ReadError::TooLarge { .. }) => return Observed::Settling,
            // Replaced by a FIFO or the like since the stat: not read.
            Err(ReadError::NotRegular(_)) => return Observed::Ignored,
            Err(ReadError::Io(_)) => return Observed::Missing,
        };
        // Empty and just modified: a writer between truncate and write.
        // Not a version yet; it is looked at again once it settles.
        if bytes.iter().all(|b| b.is_ascii_whitespace()) && modified_within(meta, RECENT) {
            return Observed::Settling;
        }
        let hash = blake3::hash(&bytes).to_hex().to_string();
        if let Some(k) = known.filter(|k| k.hash == hash) {
            return touched_or_unchanged(k, mtime_ns);
        }
        let content = parse(rel, kind, &bytes);
        Observed::New {
            hash,
            size: bytes.len() as u64,
            mtime_ns,
            content: Box::new(content),
        }
    }

    /// Every file under `dir_rel` ("" for the whole workspace), not following
    /// symlinked directories and not entering ignored ones.
    ///
    /// Names that are not UTF-8 are listed lossily decoded (U+FFFD for the
    /// bytes that are not), as everywhere in gtmd; [`Ingest::observe`] finds
    /// the real file again.
    pub fn scan(&self, dir_rel: &str) -> Vec<String> {
        let mut out = Vec::new();
        let start = if dir_rel.is_empty() {
            self.root.clone()
        } else {
            self.real_path(dir_rel)
        };
        let mut stack = vec![(dir_rel.to_string(), start)];
        while let Some((d, abs)) = stack.pop() {
            let Ok(entries) = fs::read_dir(&abs) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let rel = if d.is_empty() {
                    name.to_string()
                } else {
                    format!("{d}/{name}")
                };
                if self.ignored(&rel) {
                    continue;
                }
                match entry.file_type() {
                    Ok(t) if t.is_dir() => stack.push((rel, entry.path())),
                    Ok(_) => out.push(rel),
                    Err(_) => {}
                }
            }
        }
        out.sort();
        out
    }

    /// The file a workspace-relative name stands for: itself, or for a
    /// lossily decoded name, the file whose real name decodes to it.
    fn real_path(&self, rel: &str) -> PathBuf {
        let direct = self.root.join(rel);
        if fs::symlink_metadata(&direct).is_ok() {
            return direct;
        }
        self.resolve_lossy(rel).unwrap_or(direct)
    }
}

/// How recent a change must be for an empty protocol file to count as still
/// being written; an older empty file is simply empty.
const RECENT: std::time::Duration = std::time::Duration::from_secs(2);

fn modified_within(meta: &fs::Metadata, window: std::time::Duration) -> bool {
    meta.modified()
        .ok()
        .and_then(|m| std::time::SystemTime::now().duration_since(m).ok())
        .is_some_and(|age| age < window)
}

fn touched_or_unchanged(known: &FileEntry, mtime_ns: u64) -> Observed {
    if known.mtime_ns == mtime_ns {
        Observed::Unchanged
    } else {
        Observed::Touched { mtime_ns }
    }
}

/// Content hash and the number of bytes it covers. Only of a regular file:
/// whatever replaced the file since it was looked at (a FIFO would block
/// the event loop for ever) is not read.
fn hash_file(path: &Path) -> Result<(String, u64), ReadError> {
    let mut hasher = blake3::Hasher::new();
    let (mut f, _) = crate::input::open_regular(path)?;
    let n = std::io::copy(&mut f, &mut hasher)?;
    Ok((hasher.finalize().to_hex().to_string(), n))
}

fn mtime_ns(meta: &fs::Metadata) -> u64 {
    (meta.mtime() as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec() as u64)
}

fn rel_string(p: &Path) -> String {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The workspace as the gate checks see it: files read from disk, on demand.
pub struct DiskView<'a> {
    pub ingest: &'a Ingest,
}

impl WorkspaceView for DiskView<'_> {
    fn read(&self, rel: &str) -> Option<String> {
        let bytes = read_bounded(
            &self.ingest.root.join(rel),
            self.ingest.max_protocol_size.saturating_mul(8),
        )
        .ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn list(&self, dir: &str) -> Vec<String> {
        self.ingest.scan(dir.trim_end_matches('/'))
    }

    fn size(&self, rel: &str) -> Option<u64> {
        fs::metadata(self.ingest.root.join(rel))
            .ok()
            .map(|m| m.len())
    }
}

/// Any other file: only its presence, size and content hash matter.
fn observe_plain(path: &Path, mtime_ns: u64, known: Option<&FileEntry>) -> Observed {
    // The size is what was hashed: a writer may have grown the file since
    // the stat, and an empty size with a full hash would make an output
    // look missing for ever.
    let (hash, size) = match hash_file(path) {
        Ok(h) => h,
        Err(ReadError::NotRegular(_)) => return Observed::Ignored,
        Err(_) => return Observed::Missing,
    };
    if let Some(k) = known.filter(|k| k.hash == hash) {
        return touched_or_unchanged(k, mtime_ns);
    }
    Observed::New {
        hash,
        size,
        mtime_ns,
        content: Box::new(FileContent::Plain),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Whatever bytes land in a protocol file, parsing returns a value or a
        /// refusal naming the file: it never panics.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), kind in 0usize..6) {
            let (rel, kind) = [
                ("status/coordinator.md", FileKind::Status { agent: "coordinator".into() }),
                ("status/nobody.md", FileKind::UnknownStatus { name: "nobody".into() }),
                ("conflicts/x.md", FileKind::Conflict),
                ("strategy/decisions/x.md", FileKind::Decision),
                ("strategy/gates/phase-1-strategy.md", FileKind::Gate { phase: 1 }),
                ("requests/r.yaml", FileKind::Request),
            ][kind].clone();
            if let FileContent::Rejected { diagnostic } = parse(rel, &kind, &bytes) {
                prop_assert_eq!(diagnostic.path, rel);
                prop_assert!(!diagnostic.message.is_empty());
            }
        }
    }
}
