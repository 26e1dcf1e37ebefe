//! Paths that cannot be messages however they look: symlinks (followed
//! only inside the workspace), names that are not UTF-8, FIFOs, sockets and
//! devices. In a protocol directory each is refused by name, once, so a
//! person sees why their file did nothing; elsewhere they are passed over.

use super::*;

impl Ingest {
    pub(super) fn observe_symlink(
        &self,
        rel: &str,
        path: &Path,
        meta: &fs::Metadata,
        known: Option<&FileEntry>,
        kind: &FileKind,
    ) -> Observed {
        let target = fs::read_link(path).unwrap_or_default();
        let resolved = fs::canonicalize(path);
        let inside = resolved
            .as_ref()
            .is_ok_and(|r| r.starts_with(&self.canonical_root));
        if inside {
            let r = resolved.unwrap();
            match fs::metadata(&r) {
                // Followed directories could loop; the real directory is watched anyway.
                Ok(m) if m.is_dir() => return Observed::Ignored,
                Ok(m) if !m.is_file() => return not_regular(rel, &m, known),
                Ok(_) => {}
                Err(_) => return Observed::Missing,
            }
            // Read through the link, as a file of this path.
            let size = fs::metadata(&r).map(|m| m.len()).unwrap_or(0);
            let hash = format!(
                "link:{}:{}",
                target.display(),
                hash_file(&r).map(|(h, _)| h).unwrap_or_default()
            );
            if known.is_some_and(|k| k.hash == hash) {
                return Observed::Unchanged;
            }
            let content = if is_protocol(kind) && size <= self.max_protocol_size {
                match read_bounded(&r, self.max_protocol_size) {
                    Ok(b) => parse(rel, kind, &b),
                    Err(_) => return Observed::Missing,
                }
            } else {
                FileContent::Plain
            };
            return Observed::New {
                hash,
                size,
                mtime_ns: mtime_ns(meta),
                content: Box::new(content),
            };
        }
        let hash = format!("link-out:{}", target.display());
        if known.is_some_and(|k| k.hash == hash) {
            return Observed::Unchanged;
        }
        let d = Diagnostic::new(
            rel,
            None,
            format!(
                "is a symlink to {}, which is outside the workspace; files on the bus must be regular files or symlinks within the workspace",
                target.display()
            ),
        );
        Observed::New {
            hash,
            size: 0,
            mtime_ns: mtime_ns(meta),
            content: Box::new(FileContent::Rejected { diagnostic: d }),
        }
    }

    /// For a name with U+FFFD in it that is not there as written: the file
    /// whose real (not UTF-8) name decodes to it, component by component.
    /// Only such names pay for the directory listing.
    pub(super) fn resolve_lossy(&self, rel: &str) -> Option<PathBuf> {
        if !rel.contains(char::REPLACEMENT_CHARACTER) {
            return None;
        }
        let mut path = self.root.clone();
        for comp in rel.split('/') {
            let direct = path.join(comp);
            if !comp.contains(char::REPLACEMENT_CHARACTER) || fs::symlink_metadata(&direct).is_ok()
            {
                path = direct;
                continue;
            }
            let real = fs::read_dir(&path)
                .ok()?
                .flatten()
                .map(|e| e.file_name())
                .find(|n| n.to_str().is_none() && n.to_string_lossy() == comp)?;
            path.push(real);
        }
        Some(path)
    }

    /// A file whose name is not UTF-8. Under a protocol directory it is
    /// refused by its lossily decoded name: it cannot be a message (names
    /// are part of the protocol, and the journal and the agents need text).
    /// Elsewhere it is no business of gtmd's.
    pub(super) fn observe_bad_name(
        &self,
        rel: &str,
        real: &Path,
        known: Option<&FileEntry>,
    ) -> Observed {
        let Ok(meta) = fs::symlink_metadata(real) else {
            return Observed::Missing;
        };
        if meta.is_dir() {
            return Observed::Dir;
        }
        if !in_protocol_dir(rel) {
            tracing::debug!(file = %rel, "a file name that is not UTF-8, outside the protocol directories: ignored");
            return Observed::Ignored;
        }
        // Refused once per version, as other refusals: a rescan finds the
        // same size and mtime and says nothing new.
        let hash = format!("bad-name:{}:{}", meta.len(), mtime_ns(&meta));
        if known.is_some_and(|k| k.hash == hash) {
            return Observed::Unchanged;
        }
        let d = Diagnostic::new(
            rel,
            None,
            "the file name is not UTF-8 (shown here with \u{FFFD} for the bytes that are not); files on the bus need UTF-8 names: rename it",
        );
        Observed::New {
            hash,
            size: meta.len(),
            mtime_ns: mtime_ns(&meta),
            content: Box::new(FileContent::Rejected { diagnostic: d }),
        }
    }
}

/// Under a directory whose files are messages to gtmd: anything there that
/// gtmd cannot read as one is refused by name, never passed over in silence.
pub(super) fn in_protocol_dir(rel: &str) -> bool {
    let mut parts = rel.split('/');
    match parts.next() {
        Some("status" | "conflicts" | "requests") => true,
        Some("strategy") => matches!(parts.next(), Some("decisions" | "gates")),
        _ => false,
    }
}

/// A FIFO, socket or device (or a symlink to one). Under a protocol
/// directory it is refused by name; reading it could block for ever or
/// never end, so it is never read. Elsewhere it is ignored.
pub(super) fn not_regular(rel: &str, meta: &fs::Metadata, known: Option<&FileEntry>) -> Observed {
    let what = crate::input::kind_of(meta);
    if !in_protocol_dir(rel) {
        tracing::debug!(file = %rel, "{what}, outside the protocol directories: ignored");
        return Observed::Ignored;
    }
    // Its mtime moves when something writes into a FIFO: the inode says
    // whether it is still the same thing, refused once.
    let hash = format!("not-regular:{}:{}", meta.dev(), meta.ino());
    if known.is_some_and(|k| k.hash == hash) {
        return Observed::Unchanged;
    }
    let d = Diagnostic::new(
        rel,
        None,
        format!("is {what}, not a regular file; files on the bus must be regular files (or symlinks to one within the workspace)"),
    );
    Observed::New {
        hash,
        size: 0,
        mtime_ns: mtime_ns(meta),
        content: Box::new(FileContent::Rejected { diagnostic: d }),
    }
}
