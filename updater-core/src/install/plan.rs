use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::durable;
use crate::error::{Error, Result};
use crate::failpoint::Failpoints;

/// What a rename in a swap plan does; decides how its completion is detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum MoveKind {
    /// A path the new release ships where a carried path will go: moved out of the way.
    Displace,
    /// A preserved path or application data carried from the running tree into the incoming tree.
    Carry,
    /// A top-level entry of the running tree moved aside.
    MoveOut,
    /// A top-level entry of the incoming tree moved into the application directory.
    MoveIn,
    /// A top-level name both trees have, exchanged atomically
    /// (`RENAME_EXCHANGE`): the application never sees the name missing.
    /// The running tree's entry lands at the incoming path; a `MoveOut`
    /// from there follows.
    Exchange,
}

/// One rename of a swap plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Move {
    /// Why.
    pub(crate) kind: MoveKind,
    /// Source path (absolute).
    pub(crate) from: PathBuf,
    /// Target path (absolute).
    pub(crate) to: PathBuf,
    /// For an `Exchange`: the inode the incoming entry had when planned (it
    /// sits at `from` once the exchange is done: renames keep inodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) incoming_inode: Option<u64>,
}

fn inode_of(path: &Path) -> Result<Option<u64>> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta.ino())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("inspect", path, e)),
    }
}

/// Swaps two paths in one atomic step (`renameat2(RENAME_EXCHANGE)`).
fn exchange(a: &Path, b: &Path) -> Result<()> {
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        a,
        rustix::fs::CWD,
        b,
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .map_err(|e| Error::Io {
        action: "exchange",
        path: a.to_path_buf(),
        source: std::io::Error::new(
            std::io::Error::from(e).kind(),
            format!("with {}: {e}", b.display()),
        ),
    })
}

/// Whether the file system under `dir` can exchange two names atomically.
fn supports_exchange(dir: &Path) -> bool {
    let Ok(probe) = tempfile::Builder::new()
        .prefix(".exchange-probe-")
        .tempdir_in(dir)
    else {
        return false;
    };
    let (a, b) = (probe.path().join("a"), probe.path().join("b"));
    std::fs::create_dir(&a).is_ok() && std::fs::create_dir(&b).is_ok() && exchange(&a, &b).is_ok()
}

impl Move {
    fn new(kind: MoveKind, from: PathBuf, to: PathBuf) -> Self {
        Move {
            kind,
            from,
            to,
            incoming_inode: None,
        }
    }

    /// Performs the move (never replacing anything).
    pub(crate) fn perform(&self) -> Result<()> {
        match self.kind {
            MoveKind::Exchange => exchange(&self.from, &self.to),
            _ => durable::rename_no_replace(&self.from, &self.to),
        }
    }

    /// Reverses the move (never replacing anything).
    pub(crate) fn reverse(&self) -> Result<()> {
        match self.kind {
            MoveKind::Exchange => exchange(&self.from, &self.to),
            _ => durable::rename_no_replace(&self.to, &self.from),
        }
    }

    /// Whether this move has been done, judged from the file system alone.
    ///
    /// Sound when no later move of the plan is done (the search in
    /// [`SwapPlan::position`] goes from the last move backwards):
    /// `Displace` and `MoveOut` targets are in fresh directories, so they
    /// exist only once the move is done; a `Carry` or `MoveIn` source exists
    /// from the start and disappears only by this move. (A `Carry` target may
    /// exist before: the release's own copy, displaced by an earlier move.)
    /// An `Exchange` is done when the incoming entry's inode is at `from`.
    fn is_done(&self) -> Result<bool> {
        Ok(match self.kind {
            MoveKind::Displace | MoveKind::MoveOut => durable::try_exists(&self.to)?,
            MoveKind::Carry | MoveKind::MoveIn => !durable::try_exists(&self.from)?,
            MoveKind::Exchange => {
                self.incoming_inode.is_some() && inode_of(&self.from)? == self.incoming_inode
            }
        })
    }
}

/// The renames that swap the incoming tree with the running one, computed
/// once and stored in the journal before the first rename.
///
/// The position in the plan (how many renames are done) is *derived from the
/// file system* ([`SwapPlan::position`]), so a crash between any two renames
/// — or during recovery itself — is resumed exactly, in either direction,
/// without a journal write per rename. Cost: O(top-level entries + carried
/// paths) renames, independent of the number of files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SwapPlan {
    /// The application directory.
    pub(crate) app_dir: PathBuf,
    /// Top-level names of the application directory before the swap
    /// (everything a rollback must leave there, and nothing else).
    pub(crate) original_entries: Vec<String>,
    /// Top-level names that stay in place (state directory, carried top-level paths).
    pub(crate) fixed_entries: Vec<String>,
    /// Where entries created by the new release go when rolling back.
    pub(crate) debris_dir: PathBuf,
    /// The renames, in order.
    pub(crate) moves: Vec<Move>,
    /// Files copied into the incoming tree before the first rename so that
    /// they stay visible during the whole swap (the maintenance flag),
    /// relative to the application directory.
    #[serde(default)]
    pub(crate) mirrored: Vec<PathBuf>,
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

/// Normalised carried paths: relative, no `..`, no ancestors-and-descendants both listed.
pub(crate) fn normalise_carried(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut clean: Vec<PathBuf> = Vec::new();
    for path in paths {
        let mut normal = PathBuf::new();
        for component in path.components() {
            match component {
                std::path::Component::Normal(part) => normal.push(part),
                std::path::Component::CurDir => {}
                _ => {
                    return Err(Error::invalid(
                        format!("carried path {}", path.display()),
                        "must be relative and stay inside the application directory",
                    ));
                }
            }
        }
        if normal.as_os_str().is_empty() {
            return Err(Error::invalid(
                format!("carried path {}", path.display()),
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
pub(crate) struct SwapDirs<'a> {
    /// The application directory.
    pub(crate) app_dir: &'a Path,
    /// The complete incoming tree (on the same file system).
    pub(crate) incoming: &'a Path,
    /// A fresh directory that receives the outgoing tree.
    pub(crate) outgoing: &'a Path,
    /// A fresh directory that receives the release's own copies of carried paths.
    pub(crate) displaced: &'a Path,
    /// A fresh directory for entries the new release created, on rollback.
    pub(crate) debris: &'a Path,
    /// Top-level names never moved (the state directory).
    pub(crate) reserved: &'a [String],
    /// Paths carried from the running tree into the incoming one by rename
    /// (preserved paths and application data); the release's own copy at
    /// such a path is displaced. Paths reached through a symlink of the
    /// running tree are not carried (the data is not in the tree).
    pub(crate) carried: &'a [PathBuf],
    /// Files that must stay visible at their path during the whole swap
    /// (the maintenance flag): copied into the incoming tree first.
    pub(crate) mirrored: &'a [PathBuf],
}

/// Whether every ancestor of `relative` under `root` is a real directory
/// (no symlink on the way); missing ancestors count as fine.
fn reached_without_symlinks(root: &Path, relative: &Path) -> Result<bool> {
    let mut current = root.to_path_buf();
    let mut components = relative.components().peekable();
    while let Some(component) = components.next() {
        if components.peek().is_none() {
            break;
        }
        current.push(component);
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() || !meta.is_dir() => return Ok(false),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(Error::io("inspect", &current, e)),
        }
    }
    Ok(true)
}

/// Creates the parents of `relative` inside `root`, giving new directories
/// the mode of their counterpart in `like` (the running tree). Refuses to
/// go through anything that is not a real directory: a carried file must
/// never be renamed through a symlink of the release.
fn create_parents_inside(root: &Path, relative: &Path, like: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let mut current = root.to_path_buf();
    let mut model = like.to_path_buf();
    let mut components = relative.components().peekable();
    while let Some(component) = components.next() {
        if components.peek().is_none() {
            break;
        }
        current.push(component);
        model.push(component);
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.is_dir() && !meta.file_type().is_symlink() => {}
            Ok(_) => {
                return Err(Error::precondition(
                    "swap",
                    format!(
                        "cannot carry {} into the new release: it has a file or link at {}",
                        relative.display(),
                        current.display()
                    ),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mode = std::fs::metadata(&model)
                    .map(|m| m.permissions().mode() & 0o7777)
                    .unwrap_or(0o755);
                std::fs::DirBuilder::new()
                    .mode(mode)
                    .create(&current)
                    .map_err(|e| Error::io("create directory", &current, e))?;
                // The builder's mode is masked by the umask; set it exactly.
                std::fs::set_permissions(&current, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| Error::io("set mode of", &current, e))?;
            }
            Err(e) => return Err(Error::io("inspect", &current, e)),
        }
    }
    Ok(())
}

impl SwapPlan {
    /// Computes the plan and creates the (empty) directories it needs.
    /// Changes nothing in the application directory. Call it inside the
    /// maintenance window, right before [`SwapPlan::apply`].
    pub(crate) fn prepare(dirs: &SwapDirs<'_>) -> Result<SwapPlan> {
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
        let mirrored = normalise_carried(dirs.mirrored)?;
        let mut carried = normalise_carried(dirs.carried)?;
        // A mirrored file is copied, never carried.
        carried.retain(|path| !mirrored.iter().any(|m| m == path));
        let app_names = top_level_names(dirs.app_dir)?;
        let mut fixed: BTreeSet<String> = dirs.reserved.iter().cloned().collect();
        let mut moves = Vec::new();
        durable::create_dir_all(dirs.outgoing)?;
        durable::create_dir_all(dirs.displaced)?;
        let displace = |relative: &Path, moves: &mut Vec<Move>| -> Result<()> {
            let incoming = dirs.incoming.join(relative);
            if durable::try_exists(&incoming)? {
                let displaced = dirs.displaced.join(relative);
                durable::create_dir_all(durable::parent_of(&displaced))?;
                moves.push(Move::new(MoveKind::Displace, incoming, displaced));
            }
            Ok(())
        };
        for relative in &carried {
            let running = dirs.app_dir.join(relative);
            if !durable::try_exists(&running)? || !reached_without_symlinks(dirs.app_dir, relative)?
            {
                // Nothing to carry (the release's copy, if any, is used), or
                // the data lives outside the tree behind a symlink.
                continue;
            }
            let top_level = relative.components().count() == 1;
            if !top_level {
                // Fail before any displacement if the release blocks the way.
                create_parents_inside(dirs.incoming, relative, dirs.app_dir)?;
            }
            displace(relative, &mut moves)?;
            if top_level {
                // Stays where it is: never moved at all.
                fixed.insert(relative.to_string_lossy().into_owned());
                continue;
            }
            moves.push(Move::new(
                MoveKind::Carry,
                running,
                dirs.incoming.join(relative),
            ));
        }
        let mut copied = Vec::new();
        for relative in &mirrored {
            let running = dirs.app_dir.join(relative);
            let top = relative
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_default();
            if fixed.contains(&top)
                || !durable::try_exists(&running)?
                || !reached_without_symlinks(dirs.app_dir, relative)?
            {
                continue; // does not move, or there is nothing to keep visible
            }
            let copy = dirs.incoming.join(relative);
            if durable::try_exists(&copy)? {
                return Err(Error::precondition(
                    "swap",
                    format!(
                        "the new release ships a file at {}, where the maintenance flag must stay visible",
                        relative.display()
                    ),
                ));
            }
            create_parents_inside(dirs.incoming, relative, dirs.app_dir)?;
            let bytes = std::fs::read(&running).map_err(|e| Error::io("read", &running, e))?;
            durable::write_atomic_unsynced(&copy, &bytes)?;
            copied.push(relative.clone());
        }
        // Listed after the carries created their parents, so the listing is final.
        let incoming_names = top_level_names(dirs.incoming)?;
        for name in &incoming_names {
            if dirs.reserved.contains(name) {
                return Err(Error::invalid(
                    format!("incoming tree {}", dirs.incoming.display()),
                    format!("contains the reserved name {name}"),
                ));
            }
        }
        // Where both trees have a name, one atomic exchange replaces it: a
        // request during the swap never finds it missing.
        let atomic = supports_exchange(dirs.outgoing);
        let names: BTreeSet<&String> = app_names.iter().chain(&incoming_names).collect();
        for name in names {
            if fixed.contains(name) {
                continue; // stays in place (its release copy was displaced above)
            }
            let (running, incoming) = (dirs.app_dir.join(name), dirs.incoming.join(name));
            let out = Move::new(MoveKind::MoveOut, running.clone(), dirs.outgoing.join(name));
            match (app_names.contains(name), incoming_names.contains(name)) {
                (true, true) if atomic => {
                    moves.push(Move {
                        incoming_inode: inode_of(&incoming)?,
                        ..Move::new(MoveKind::Exchange, running, incoming.clone())
                    });
                    moves.push(Move::new(
                        MoveKind::MoveOut,
                        incoming,
                        dirs.outgoing.join(name),
                    ));
                }
                (true, true) => {
                    moves.push(out);
                    moves.push(Move::new(MoveKind::MoveIn, incoming, running));
                }
                (true, false) => moves.push(out),
                (false, true) => moves.push(Move::new(MoveKind::MoveIn, incoming, running)),
                (false, false) => {}
            }
        }
        Ok(SwapPlan {
            app_dir: dirs.app_dir.to_path_buf(),
            original_entries: app_names.into_iter().collect(),
            fixed_entries: fixed.into_iter().collect(),
            debris_dir: dirs.debris.to_path_buf(),
            moves,
            mirrored: copied,
        })
    }

    /// How many moves are done, derived from the file system.
    pub(crate) fn position(&self) -> Result<usize> {
        for i in (1..=self.moves.len()).rev() {
            if self.moves[i - 1].is_done()? {
                return Ok(i);
            }
        }
        Ok(0)
    }

    /// Whether every move is done.
    pub(crate) fn is_complete(&self) -> Result<bool> {
        Ok(self.position()? == self.moves.len())
    }

    /// Performs the remaining moves, then syncs the file system.
    /// Failpoint `swap:move:<i>` fires after move `i` (1-based).
    pub(crate) fn apply(&self, failpoints: &Failpoints) -> Result<()> {
        // Never replace: if the position was misjudged (the tree changed
        // behind our back), a rename fails instead of destroying data.
        for index in self.position()?..self.moves.len() {
            self.moves[index].perform()?;
            failpoints.hit(&format!("swap:move:{}", index + 1))?;
        }
        self.sync()
    }

    /// Undoes the moves done so far, newest first, then moves entries the new
    /// release created in the application directory to the debris directory,
    /// so the tree is exactly the original one. Failpoint
    /// `swap:undo:<i>` fires after move `i` is undone.
    pub(crate) fn undo(&self, failpoints: &Failpoints) -> Result<()> {
        for index in (0..self.position()?).rev() {
            self.moves[index].reverse()?;
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
                durable::rename_no_replace(
                    &self.app_dir.join(&name),
                    &self.debris_dir.join(&name),
                )?;
            }
        }
        self.sync()
    }

    /// One `syncfs` makes every rename durable (incoming, outgoing and the
    /// application directory are on one file system).
    fn sync(&self) -> Result<()> {
        durable::sync_filesystem(&self.app_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failpoint::none as no_failpoints;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    type Tree = BTreeMap<String, String>;

    /// Files (path → content) under `root`; directories as `path/` → "".
    fn read_tree(root: &Path, skip: &str) -> Tree {
        let mut out = Tree::new();
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if rel == skip {
                    continue;
                }
                if path.is_dir() {
                    out.insert(format!("{rel}/"), String::new());
                    pending.push(path);
                } else {
                    out.insert(rel, std::fs::read_to_string(&path).unwrap());
                }
            }
        }
        out
    }

    fn write(root: &Path, files: &[(String, String)]) {
        std::fs::create_dir_all(root).unwrap();
        for (path, content) in files {
            let full = root.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            // A path may already be a directory because a longer path was written first.
            if !full.is_dir() {
                std::fs::write(&full, content).unwrap();
            }
        }
    }

    const PRESERVED: [&str; 4] = [".env", "storage/logs", "storage/app/public", "data"];

    fn arb_files() -> impl Strategy<Value = Vec<(String, String)>> {
        let path = prop_oneof![
            Just(".env".to_string()),
            Just("storage/logs/app.log".to_string()),
            Just("storage/app/public/up.png".to_string()),
            Just("storage/framework/cache".to_string()),
            Just("data/db.sqlite".to_string()),
            "[a-d]{1,2}".prop_map(|n| format!("src/{n}.php")),
            "[a-d]{1,2}".prop_map(|n| format!("{n}.txt")),
            "[a-d]{1,2}".prop_map(|n| format!("vendor/{n}/lib.php")),
        ];
        proptest::collection::vec((path, "[a-z]{0,6}"), 0..12)
    }

    fn setup(old: &[(String, String)], new: &[(String, String)]) -> (tempfile::TempDir, SwapPlan) {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        write(&app, old);
        std::fs::create_dir_all(app.join(".updater")).unwrap();
        let incoming = app.join(".updater/staging/new");
        write(&incoming, new);
        let preserved: Vec<PathBuf> = PRESERVED.iter().map(PathBuf::from).collect();
        let reserved = vec![".updater".to_string()];
        let state = app.join(".updater");
        let plan = SwapPlan::prepare(&SwapDirs {
            app_dir: &app,
            incoming: &incoming,
            outgoing: &state.join("releases/old"),
            displaced: &state.join("displaced/x"),
            debris: &state.join("debris/x"),
            reserved: &reserved,
            carried: &preserved,
            mirrored: &[],
        })
        .unwrap();
        (tmp, plan)
    }

    /// The tree an update must produce: the new files, with each preserved
    /// path that exists in the old tree taken from the old tree.
    fn expected_after(old: &Tree, new: &Tree) -> Tree {
        let under =
            |path: &str, prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
        let kept_from_old: Vec<&str> = PRESERVED
            .iter()
            .copied()
            .filter(|p| old.contains_key(*p) || old.contains_key(&format!("{p}/")))
            .collect();
        let mut out: Tree = new
            .iter()
            .filter(|(path, _)| {
                !kept_from_old
                    .iter()
                    .any(|p| under(path.trim_end_matches('/'), p))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (path, content) in old {
            if kept_from_old
                .iter()
                .any(|p| under(path.trim_end_matches('/'), p))
            {
                out.insert(path.clone(), content.clone());
                // Parent directories of a carried path exist in the result.
                let mut parent = Path::new(path.trim_end_matches('/')).parent();
                while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
                    out.insert(format!("{}/", dir.display()), String::new());
                    parent = dir.parent();
                }
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn a_complete_swap_yields_the_new_tree_with_preserved_paths_carried(old in arb_files(), new in arb_files()) {
            let (tmp, plan) = setup(&old, &new);
            let app = tmp.path().join("app");
            let old_tree = read_tree(&app, ".updater");
            let new_tree = read_tree(&app.join(".updater/staging/new"), "");
            plan.apply(no_failpoints()).unwrap();
            prop_assert!(plan.is_complete().unwrap());
            prop_assert_eq!(read_tree(&app, ".updater"), expected_after(&old_tree, &new_tree));
        }

        #[test]
        fn from_every_prefix_of_the_plan_position_is_exact_and_undo_restores_the_old_tree(
            old in arb_files(), new in arb_files(), cut in 0usize..64
        ) {
            let (tmp, plan) = setup(&old, &new);
            let app = tmp.path().join("app");
            let old_tree = read_tree(&app, ".updater");
            let prefix = cut % (plan.moves.len() + 1);
            for step in &plan.moves[..prefix] {
                step.perform().unwrap();
            }
            // The journal holds only the plan: the position comes from the file system.
            prop_assert_eq!(plan.position().unwrap(), prefix);
            plan.undo(no_failpoints()).unwrap();
            prop_assert_eq!(plan.position().unwrap(), 0);
            prop_assert_eq!(read_tree(&app, ".updater"), old_tree.clone());
            // Undo is idempotent, and a resumed apply completes the swap.
            plan.undo(no_failpoints()).unwrap();
            prop_assert_eq!(read_tree(&app, ".updater"), old_tree);
            plan.apply(no_failpoints()).unwrap();
            prop_assert!(plan.is_complete().unwrap());
        }
    }

    #[test]
    fn entries_a_failed_release_created_are_moved_out_by_undo() {
        let (tmp, plan) = setup(
            &[("index.php".into(), "old".into())],
            &[("index.php".into(), "new".into())],
        );
        let app = tmp.path().join("app");
        plan.apply(no_failpoints()).unwrap();
        std::fs::write(app.join("cache.tmp"), "written by the new release").unwrap();
        plan.undo(no_failpoints()).unwrap();
        assert_eq!(
            std::fs::read_to_string(app.join("index.php")).unwrap(),
            "old"
        );
        assert!(!app.join("cache.tmp").exists());
        assert!(app.join(".updater/debris/x/cache.tmp").exists());
    }

    #[test]
    fn a_path_recreated_behind_the_plan_makes_undo_fail_instead_of_overwriting_user_data() {
        // The release ships data/db.sqlite, the app has the user's; crash after the carry.
        let (tmp, plan) = setup(
            &[
                ("storage/logs/app.log".into(), "user data".into()),
                ("x.txt".into(), "old".into()),
            ],
            &[
                ("storage/logs/app.log".into(), "release seed".into()),
                ("x.txt".into(), "new".into()),
            ],
        );
        let app = tmp.path().join("app");
        let carry = plan
            .moves
            .iter()
            .position(|m| m.kind == MoveKind::Carry)
            .unwrap();
        for step in &plan.moves[..=carry] {
            step.perform().unwrap();
        }
        // A worker recreates an empty log directory where the user's was.
        std::fs::create_dir_all(app.join("storage/logs")).unwrap();
        assert!(plan.undo(no_failpoints()).is_err(), "must fail closed");
        let carried = app.join(".updater/staging/new/storage/logs/app.log");
        assert_eq!(
            std::fs::read_to_string(carried).unwrap(),
            "user data",
            "never overwritten"
        );
    }

    #[test]
    fn preserved_paths_must_stay_inside_the_application() {
        for bad in ["../etc", "/etc/passwd", "a/../../b", ""] {
            assert!(normalise_carried(&[PathBuf::from(bad)]).is_err(), "{bad}");
        }
        let clean =
            normalise_carried(&[PathBuf::from("storage"), PathBuf::from("storage/logs")]).unwrap();
        assert_eq!(
            clean,
            vec![PathBuf::from("storage")],
            "a descendant of a preserved path is covered by it"
        );
    }
}
