//! The output folder of one run, confined to its root and replaced as a whole.
//!
//! A run's files (`report.json`, `trace.jsonl`, `history.jsonl`) are written into a staging
//! folder beside the target and moved into place with renames, never one file at a time, so the
//! target folder always holds the files of one run (one seed), never a mix of two.
//!
//! Layout. For a target `P/NAME`, the staging folder is `P/.faultline-XXXXXX.tmp/` holding
//!
//! - `lock`: a file locked (advisory, `File::try_lock`) for as long as the run lives; the
//!   operating system releases the lock when the process ends, however it ends;
//! - `new/NAME/`: the run's files as they are written;
//! - `old/NAME/`: the previous `P/NAME`, for the instant of the swap.
//!
//! The staging folder is created (and locked) under the name `.faultline-XXXXXX.new` and then
//! renamed to `.tmp`, so every `.tmp` staging folder of a live run is locked.
//!
//! The swap: rename `P/NAME` (if it exists) to `old/NAME`, rename `new/NAME` to `P/NAME`, remove
//! the staging folder. A process killed at any point leaves `P/NAME` as the complete previous
//! folder, the complete new folder, or (killed between the two renames) absent with the
//! previous folder kept in `old/NAME`. The next run writing into `P` (any target in `P`) removes
//! every staging folder whose lock is free, after moving an `old/NAME` back to `P/NAME` if
//! `P/NAME` is missing; it also removes `.faultline-*.tmp` files left there by faultline
//! versions that renamed files one by one.
//!
//! The staging folder is made, with `new/NAME` inside it, before the simulation starts
//! ([`Staging::prepare`]): an unwritable folder or a name the file system refuses fails at once.
//! An existing target is replaced only if it looks like a report folder (nothing but the report
//! files, charts and stale `.faultline-*.tmp` files), so `--out` can never wipe another folder.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

/// The files a run writes into its folder, besides its charts (see [`is_chart_file_name`]).
pub const RUN_FILES: [&str; 4] = ["report.json", "trace.jsonl", "history.jsonl", "report.html"];

/// True for the name of a chart a run writes: lowercase letters, digits and `-`, ending in
/// `.svg` (`latency.svg`, `node-timeline.svg`).
pub fn is_chart_file_name(name: &str) -> bool {
    name.strip_suffix(".svg").is_some_and(|stem| {
        !stem.is_empty()
            && stem
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

/// Start of the names of staging folders and stale temporary files.
const PREFIX: &str = ".faultline-";
/// End of the names of staging folders (and of temporary files of earlier versions).
const STAGING_SUFFIX: &str = ".tmp";
/// End of the name of a staging folder before it is locked.
const UNLOCKED_SUFFIX: &str = ".new";

/// Why a run's output folder cannot be used. Every one is found before the simulation starts.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The scenario name is not one plain folder name, so `ROOT/NAME/seed-N` would leave `ROOT`.
    #[error(
        "the scenario name {name:?} is not a plain folder name (no `/`, `\\`, `.`, `..`, NUL or \
         empty name): the report folder {root}/<name>/seed-<N> would not stay inside {root}"
    )]
    NameEscapes {
        /// The scenario's name.
        name: String,
        /// The output root it must stay inside.
        root: String,
    },
    /// The output path has no last folder name (e.g. `..` or `/`).
    #[error("the output folder {path} does not end in a folder name (like `reports/run-1`)")]
    NoFolderName {
        /// The path as given.
        path: String,
    },
    /// The output path exists and is not a folder of an earlier run, so it is not replaced.
    #[error(
        "the output folder {path} exists and is not a faultline report folder ({why}); \
         choose another --out or remove it"
    )]
    NotAReportFolder {
        /// The path as given.
        path: String,
        /// What is in the way.
        why: String,
    },
    /// A file-system operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done (`create the staging folder in`, `write`, ...).
        action: &'static str,
        /// The path involved.
        path: String,
        /// The operating system's error.
        source: io::Error,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> OutputError {
    let path = path.display().to_string();
    move |source| OutputError::Io {
        action,
        path,
        source,
    }
}

/// The output folder of a run: `out` if given, else `root/<scenario name>/seed-<seed>`.
///
/// Errors: [`OutputError::NameEscapes`] if `name` is not exactly one plain path component
/// (empty, `.`, `..`, containing `/`, `\` or NUL, or absolute), so the folder is always inside
/// `root` whatever the scenario says.
pub fn out_dir(
    out: Option<&Path>,
    root: &Path,
    name: &str,
    seed: u64,
) -> Result<PathBuf, OutputError> {
    if let Some(out) = out {
        return Ok(out.to_path_buf());
    }
    let plain = !name.contains(['/', '\\', '\0'])
        && matches!(
            Path::new(name).components().collect::<Vec<_>>().as_slice(),
            [Component::Normal(c)] if *c == OsStr::new(name)
        );
    let dir = root.join(name).join(format!("seed-{seed}"));
    let confined = dir
        .strip_prefix(root)
        .is_ok_and(|rest| rest.components().all(|c| matches!(c, Component::Normal(_))));
    if !plain || !confined {
        return Err(OutputError::NameEscapes {
            name: name.to_string(),
            root: root.display().to_string(),
        });
    }
    Ok(dir)
}

/// A run's staging folder, made and locked before the simulation: write the files with
/// [`Staging::write`], then move them into place with [`Staging::commit`]. Dropped without a
/// commit (an error), it removes itself.
#[derive(Debug)]
pub struct Staging {
    /// The target as given (for messages).
    target: PathBuf,
    /// The folder that holds the target.
    parent: PathBuf,
    /// The target's last component.
    name: OsString,
    /// `parent/.faultline-XXXXXX.tmp`.
    dir: PathBuf,
    /// The locked `lock` file; `None` once committed.
    lock: Option<File>,
}

impl Staging {
    /// Checks `target`, removes stale staging folders beside it, and makes a locked staging
    /// folder with an empty `new/NAME` in it. Creates `target`'s parent folders if needed.
    ///
    /// Errors: [`OutputError::NoFolderName`], [`OutputError::NotAReportFolder`] (an existing
    /// target that is a file, a symbolic link, or a folder holding anything but a run's files),
    /// [`OutputError::Io`] (the parent cannot be created or written, or the file system refuses
    /// the name, e.g. longer than 255 bytes).
    pub fn prepare(target: &Path) -> Result<Staging, OutputError> {
        let absolute = std::path::absolute(target).map_err(io_error("resolve", target))?;
        let (Some(parent), Some(name)) = (absolute.parent(), absolute.file_name()) else {
            return Err(OutputError::NoFolderName {
                path: target.display().to_string(),
            });
        };
        let parent = parent.to_path_buf();
        check_replaceable(target, &absolute)?;
        fs::create_dir_all(&parent).map_err(io_error("create the folder", &parent))?;
        remove_stale(&parent);
        let unlocked = tempfile::Builder::new()
            .prefix(PREFIX)
            .suffix(UNLOCKED_SUFFIX)
            .tempdir_in(&parent)
            .map_err(io_error("create a staging folder in", &parent))?;
        let lock = File::create(unlocked.path().join("lock"))
            .map_err(io_error("create a lock file in", unlocked.path()))?;
        lock.try_lock()
            .map_err(|e| io_error("lock", unlocked.path())(e.into()))?;
        let staged_name = unlocked
            .path()
            .file_name()
            .expect("a temporary folder has a name")
            .to_string_lossy()
            .replace(UNLOCKED_SUFFIX, STAGING_SUFFIX);
        let dir = parent.join(staged_name);
        let unlocked = unlocked.keep();
        fs::rename(&unlocked, &dir).map_err(io_error("rename the staging folder", &unlocked))?;
        let staging = Staging {
            target: target.to_path_buf(),
            parent,
            name: name.to_os_string(),
            dir,
            lock: Some(lock),
        };
        // The probe: the file system accepts the target's name here if it does beside it.
        let new = staging.new_dir();
        fs::create_dir_all(&new).map_err(io_error("create the folder", &new))?;
        Ok(staging)
    }

    /// The target folder as given.
    pub fn target(&self) -> &Path {
        &self.target
    }

    fn new_dir(&self) -> PathBuf {
        self.dir.join("new").join(&self.name)
    }

    /// Writes the concatenation of `parts` to the file `file_name` of the new folder, and
    /// flushes it to disk.
    pub fn write<'a>(
        &self,
        file_name: &str,
        parts: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), OutputError> {
        self.write_with(file_name, |out| {
            for part in parts {
                out.write_all(part)?;
            }
            Ok(())
        })
    }

    /// Writes the file `file_name` of the new folder with `write` (through a buffer, so it may
    /// write in small pieces), and flushes it to disk.
    pub fn write_with(
        &self,
        file_name: &str,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), OutputError> {
        let path = self.file_path(file_name);
        let run = || -> io::Result<()> {
            let file = File::create(&path)?;
            let mut out = io::BufWriter::with_capacity(1 << 20, &file);
            write(&mut out)?;
            out.flush()?;
            drop(out);
            file.sync_all()
        };
        run().map_err(io_error("write", &path))
    }

    /// Where the file `file_name` of the new folder is written: for a file streamed there
    /// while the run goes (the trace, see `sim::RunOptions::trace_file`), which the commit then
    /// moves into place with the rest.
    pub fn file_path(&self, file_name: &str) -> PathBuf {
        self.new_dir().join(file_name)
    }

    /// A path for a scratch file of this run, inside the staging folder but outside the new
    /// folder (so never part of the report; removed with the staging folder).
    pub fn scratch_path(&self, file_name: &str) -> PathBuf {
        self.dir.join(file_name)
    }

    /// Moves the new folder into place (see the module docs for what a kill at each step
    /// leaves) and removes the staging folder. Returns the target path as given.
    pub fn commit(mut self) -> Result<PathBuf, OutputError> {
        let new = self.new_dir();
        sync_dir(&new).map_err(io_error("flush", &new))?;
        let target = self.parent.join(&self.name);
        // Checked again: something may have appeared there while the simulation ran.
        check_replaceable(&self.target, &target)?;
        if fs::symlink_metadata(&target).is_ok() {
            let old = self.dir.join("old");
            fs::create_dir(&old).map_err(io_error("create the folder", &old))?;
            fs::rename(&target, old.join(&self.name))
                .map_err(io_error("move aside the previous report folder", &target))?;
        }
        fs::rename(&new, &target).map_err(io_error("move the new report folder to", &target))?;
        sync_dir(&self.parent).map_err(io_error("flush", &self.parent))?;
        let _ = fs::remove_dir_all(&self.dir);
        self.lock = None;
        Ok(self.target.clone())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.lock.is_some() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Refuses an existing `path` that is not a folder of an earlier run.
fn check_replaceable(given: &Path, path: &Path) -> Result<(), OutputError> {
    let refuse = |why: String| OutputError::NotAReportFolder {
        path: given.display().to_string(),
        why,
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("inspect", given)(e)),
    };
    if meta.file_type().is_symlink() {
        return Err(refuse("it is a symbolic link".into()));
    }
    if !meta.is_dir() {
        return Err(refuse("it is a file".into()));
    }
    for entry in fs::read_dir(path).map_err(io_error("list", given))? {
        let entry = entry.map_err(io_error("list", given))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        let ours = RUN_FILES.contains(&name.as_ref())
            || is_chart_file_name(&name)
            || is_stale_file_name(&name);
        if !(is_file && ours) {
            return Err(refuse(format!("it holds {name:?}")));
        }
    }
    Ok(())
}

fn is_stale_file_name(name: &str) -> bool {
    name.starts_with(PREFIX) && name.ends_with(STAGING_SUFFIX)
}

/// Removes, in `parent`, staging folders of runs that ended without committing (their lock is
/// free) and temporary files of earlier versions. Best effort: what cannot be removed stays.
fn remove_stale(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !is_stale_file_name(&name.to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_file() => {
                let _ = fs::remove_file(&path);
            }
            Ok(t) if t.is_dir() => {
                let Ok(lock) = File::open(path.join("lock")) else {
                    continue;
                };
                if lock.try_lock().is_err() {
                    continue; // a live run
                }
                restore_old(parent, &path);
                let _ = fs::remove_dir_all(&path);
            }
            _ => {}
        }
    }
}

/// Moves `staging/old/NAME` back to `parent/NAME` if a run was killed between its two renames.
fn restore_old(parent: &Path, staging: &Path) {
    let Ok(entries) = fs::read_dir(staging.join("old")) else {
        return;
    };
    for entry in entries.flatten() {
        let target = parent.join(entry.file_name());
        if fs::symlink_metadata(&target).is_err() {
            let _ = fs::rename(entry.path(), target);
        }
    }
}

/// Flushes a folder's entries to disk (no-op where folders cannot be opened as files).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// A scenario file `faultline` writes (`run --export-faults`, `shrink`): checks, before any run,
/// that `path` names a file (not a folder) and creates its folder. Errors name the path.
pub fn prepare_file(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!(
            "{} is a folder; expected a file name",
            path.display()
        ));
    }
    if path.file_name().is_none() {
        return Err(format!("{} names no file", path.display()));
    }
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create the folder {}: {e}", parent.display())),
        None => Ok(()),
    }
}

/// Writes `text` to the file `path` atomically: into a temporary file beside it, flushed to disk,
/// then renamed over `path`, so `path` holds the old file or the whole new one, never a part.
pub fn write_file_atomically(path: &Path, text: &str) -> io::Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(PREFIX)
        .suffix(STAGING_SUFFIX)
        .tempfile_in(parent)?;
    file.write_all(text.as_bytes())?;
    // A temporary file is private (0600); the file written is an ordinary one.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))?;
    }
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_dir_keeps_every_scenario_name_inside_the_root() {
        let root = Path::new("reports");
        assert_eq!(
            out_dir(None, root, "raft-basic", 3).unwrap(),
            Path::new("reports/raft-basic/seed-3")
        );
        for name in [
            "",
            ".",
            "..",
            "../x",
            "../../../../tmp/x",
            "/tmp/x",
            "a/b/c",
            "a/",
            "./a",
            "a\\b",
            "a\0b",
        ] {
            assert!(
                matches!(
                    out_dir(None, root, name, 1),
                    Err(OutputError::NameEscapes { .. })
                ),
                "{name:?}"
            );
        }
        assert_eq!(
            out_dir(Some(Path::new("/x/y")), root, "../z", 1).unwrap(),
            Path::new("/x/y"),
            "--out is used as given"
        );
    }

    fn names(dir: &Path) -> Vec<OsString> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    }

    /// A folder `run` holding one file, in a fresh temporary folder.
    fn an_earlier_run(file: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("run");
        fs::create_dir(&target).unwrap();
        fs::write(target.join(file), bytes).unwrap();
        (root, target)
    }

    #[test]
    fn a_staging_folder_dropped_without_a_commit_is_removed_and_the_target_kept() {
        let (root, target) = an_earlier_run("report.json", b"old");
        let staging = Staging::prepare(&target).unwrap();
        let dir = staging.dir.clone();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(PREFIX) && name.ends_with(STAGING_SUFFIX),
            "{name}"
        );
        assert_eq!(dir.parent(), Some(root.path()), "beside the target");
        staging.write("report.json", [&b"new"[..]]).unwrap();
        drop(staging);
        assert!(!dir.exists());
        assert_eq!(fs::read(target.join("report.json")).unwrap(), b"old");
    }

    #[test]
    fn a_committed_staging_folder_replaces_the_target_and_is_gone() {
        let (root, target) = an_earlier_run("trace.jsonl", b"old trace");
        let staging = Staging::prepare(&target).unwrap();
        staging.write("report.json", [&b"new"[..]]).unwrap();
        assert_eq!(staging.commit().unwrap(), target);
        assert_eq!(names(root.path()), ["run"]);
        assert_eq!(
            names(&target),
            ["report.json"],
            "the old trace went with the old folder"
        );
    }

    #[test]
    fn a_target_without_a_folder_name_is_refused() {
        for path in ["..", "/", "a/.."] {
            assert!(
                matches!(
                    Staging::prepare(Path::new(path)),
                    Err(OutputError::NoFolderName { .. })
                ),
                "{path}"
            );
        }
    }
}
