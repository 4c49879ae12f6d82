use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::durable;
use crate::error::{Error, Result};
use crate::failpoint::Failpoints;

/// What a rename in a swap plan does; decides how its completion is detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveKind {
    /// A path the new release ships where a preserved path will go: moved out of the way.
    Displace,
    /// A preserved path carried from the running tree into the incoming tree.
    Carry,
    /// A top-level entry of the running tree moved aside.
    MoveOut,
    /// A top-level entry of the incoming tree moved into the application directory.
    MoveIn,
}

/// One rename of a swap plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// Why.
    pub kind: MoveKind,
    /// Source path (absolute).
    pub from: PathBuf,
    /// Target path (absolute).
    pub to: PathBuf,
}

impl Move {
    /// Whether this move has been done, judged from the file system alone.
    ///
    /// Sound when no later move of the plan is done (the search in
    /// [`SwapPlan::position`] goes from the last move backwards):
    /// `Displace` and `MoveOut` targets are in fresh directories, so they
    /// exist only once the move is done; a `Carry` or `MoveIn` source exists
    /// from the start and disappears only by this move. (A `Carry` target may
    /// exist before: the release's own copy, displaced by an earlier move.)
    fn is_done(&self) -> bool {
        match self.kind {
            MoveKind::Displace | MoveKind::MoveOut => durable::exists(&self.to),
            MoveKind::Carry | MoveKind::MoveIn => !durable::exists(&self.from),
        }
    }
}

/// The renames that swap the incoming tree with the running one, computed
/// once and stored in the journal before the first rename.
///
/// The position in the plan (how many renames are done) is *derived from the
/// file system* ([`SwapPlan::position`]), so a crash between any two renames
/// — or during recovery itself — is resumed exactly, in either direction,
/// without a journal write per rename. Cost: O(top-level entries + preserved
/// paths) renames, independent of the number of files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapPlan {
    /// The application directory.
    pub app_dir: PathBuf,
    /// Top-level names of the application directory before the swap
    /// (everything a rollback must leave there, and nothing else).
    pub original_entries: Vec<String>,
    /// Top-level names that stay in place (state directory, preserved top-level paths).
    pub fixed_entries: Vec<String>,
    /// Where entries created by the new release go when rolling back.
    pub debris_dir: PathBuf,
    /// The renames, in order.
    pub moves: Vec<Move>,
    /// Directories to fsync after a batch of renames.
    pub dirs_to_sync: Vec<PathBuf>,
}

fn top_level_names(dir: &Path) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let name = entry.file_name().into_string().map_err(|name| {
            Error::invalid(
                format!("file name {name:?} in {}", dir.display()),
                "not valid UTF-8",
            )
        })?;
        names.insert(name);
    }
    Ok(names)
}

/// Normalised preserved paths: relative, no `..`, no ancestors-and-descendants both listed.
fn normalise_preserved(preserved: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut clean: Vec<PathBuf> = Vec::new();
    for path in preserved {
        let mut normal = PathBuf::new();
        for component in path.components() {
            match component {
                std::path::Component::Normal(part) => normal.push(part),
                std::path::Component::CurDir => {}
                _ => {
                    return Err(Error::invalid(
                        format!("preserved path {}", path.display()),
                        "must be relative and stay inside the application directory",
                    ));
                }
            }
        }
        if normal.as_os_str().is_empty() {
            return Err(Error::invalid(
                format!("preserved path {}", path.display()),
                "is empty",
            ));
        }
        clean.push(normal);
    }
    clean.sort();
    clean.dedup();
    let all = clean.clone();
    clean.retain(|p| !all.iter().any(|other| other != p && p.starts_with(other)));
    Ok(clean)
}

/// The directories of a swap and the rules it follows.
#[derive(Debug, Clone)]
pub struct SwapDirs<'a> {
    /// The application directory.
    pub app_dir: &'a Path,
    /// The complete incoming tree (on the same file system).
    pub incoming: &'a Path,
    /// A fresh directory that receives the outgoing tree.
    pub outgoing: &'a Path,
    /// A fresh directory that receives the release's own copies of preserved paths.
    pub displaced: &'a Path,
    /// A fresh directory for entries the new release created, on rollback.
    pub debris: &'a Path,
    /// Top-level names never moved (the state directory).
    pub reserved: &'a [String],
    /// Paths carried from the running tree into the incoming one.
    pub preserved: &'a [PathBuf],
}

impl SwapPlan {
    /// Computes the plan and creates the (empty) directories it needs.
    /// Changes nothing in the application directory. Call it inside the
    /// maintenance window, right before [`SwapPlan::apply`].
    pub fn prepare(dirs: &SwapDirs<'_>) -> Result<SwapPlan> {
        for fresh in [dirs.outgoing, dirs.displaced] {
            if durable::exists(fresh) {
                return Err(Error::precondition(
                    "swap",
                    format!(
                        "{} already exists; a previous swap was not cleaned up",
                        fresh.display()
                    ),
                ));
            }
        }
        let preserved = normalise_preserved(dirs.preserved)?;
        let app_names = top_level_names(dirs.app_dir)?;
        let mut fixed: BTreeSet<String> = dirs.reserved.iter().cloned().collect();
        let mut moves = Vec::new();
        let mut dirs_to_sync: BTreeSet<PathBuf> = BTreeSet::new();
        durable::create_dir_all(dirs.outgoing)?;
        durable::create_dir_all(dirs.displaced)?;
        dirs_to_sync.extend([
            dirs.app_dir.to_path_buf(),
            dirs.incoming.to_path_buf(),
            dirs.outgoing.to_path_buf(),
            dirs.displaced.to_path_buf(),
        ]);
        for relative in &preserved {
            let running = dirs.app_dir.join(relative);
            let incoming = dirs.incoming.join(relative);
            let top_level = relative.components().count() == 1;
            if !durable::exists(&running) {
                continue; // nothing to carry: the release's copy (if any) is used
            }
            if durable::exists(&incoming) {
                let displaced = dirs.displaced.join(relative);
                let parent = durable::parent_of(&displaced).to_path_buf();
                durable::create_dir_all(&parent)?;
                dirs_to_sync.insert(parent);
                dirs_to_sync.insert(durable::parent_of(&incoming).to_path_buf());
                moves.push(Move {
                    kind: MoveKind::Displace,
                    from: incoming.clone(),
                    to: displaced,
                });
            }
            if top_level {
                // Stays where it is: never moved at all.
                fixed.insert(relative.to_string_lossy().into_owned());
                continue;
            }
            let parent = durable::parent_of(&incoming).to_path_buf();
            std::fs::create_dir_all(&parent)
                .map_err(|e| Error::io("create directory", &parent, e))?;
            dirs_to_sync.insert(parent);
            dirs_to_sync.insert(durable::parent_of(&running).to_path_buf());
            moves.push(Move {
                kind: MoveKind::Carry,
                from: running,
                to: incoming,
            });
        }
        for name in &app_names {
            if !fixed.contains(name) {
                moves.push(Move {
                    kind: MoveKind::MoveOut,
                    from: dirs.app_dir.join(name),
                    to: dirs.outgoing.join(name),
                });
            }
        }
        // Listed after the carries created their parents, so the listing is final.
        let incoming_names = top_level_names(dirs.incoming)?;
        for name in &incoming_names {
            if fixed.contains(name) {
                if dirs.reserved.contains(name) {
                    return Err(Error::invalid(
                        format!("incoming tree {}", dirs.incoming.display()),
                        format!("contains the reserved name {name}"),
                    ));
                }
                continue; // displaced above
            }
            moves.push(Move {
                kind: MoveKind::MoveIn,
                from: dirs.incoming.join(name),
                to: dirs.app_dir.join(name),
            });
        }
        Ok(SwapPlan {
            app_dir: dirs.app_dir.to_path_buf(),
            original_entries: app_names.into_iter().collect(),
            fixed_entries: fixed.into_iter().collect(),
            debris_dir: dirs.debris.to_path_buf(),
            moves,
            dirs_to_sync: dirs_to_sync.into_iter().collect(),
        })
    }

    /// How many moves are done, derived from the file system.
    pub fn position(&self) -> usize {
        (1..=self.moves.len())
            .rev()
            .find(|&i| self.moves[i - 1].is_done())
            .unwrap_or(0)
    }

    /// Whether every move is done.
    pub fn is_complete(&self) -> bool {
        self.position() == self.moves.len()
    }

    /// Performs the remaining moves, then fsyncs the directories involved.
    /// Failpoint `swap:move:<i>` fires after move `i` (1-based).
    pub fn apply(&self, failpoints: &dyn Failpoints) -> Result<()> {
        for index in self.position()..self.moves.len() {
            let step = &self.moves[index];
            durable::rename(&step.from, &step.to)?;
            failpoints.hit(&format!("swap:move:{}", index + 1))?;
        }
        self.sync()
    }

    /// Undoes the moves done so far, newest first, then moves entries the new
    /// release created in the application directory to the debris directory,
    /// so the tree is exactly the original one. Failpoint
    /// `swap:undo:<i>` fires after move `i` is undone.
    pub fn undo(&self, failpoints: &dyn Failpoints) -> Result<()> {
        for index in (0..self.position()).rev() {
            let step = &self.moves[index];
            durable::rename(&step.to, &step.from)?;
            failpoints.hit(&format!("swap:undo:{}", index + 1))?;
        }
        let expected: BTreeSet<&str> = self
            .original_entries
            .iter()
            .chain(&self.fixed_entries)
            .map(String::as_str)
            .collect();
        for name in top_level_names(&self.app_dir)? {
            if !expected.contains(name.as_str()) {
                durable::create_dir_all(&self.debris_dir)?;
                durable::rename(&self.app_dir.join(&name), &self.debris_dir.join(&name))?;
            }
        }
        self.sync()
    }

    fn sync(&self) -> Result<()> {
        for dir in &self.dirs_to_sync {
            if durable::exists(dir) {
                durable::sync_dir(dir)?;
            }
        }
        Ok(())
    }
}
