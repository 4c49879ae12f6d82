//! Installing a release by swapping directory entries, never by copying files.
//!
//! The application directory keeps its identity (its inode, so a web
//! server's document root or a service's working directory stays valid);
//! its *top-level entries* are swapped by rename:
//!
//! ```text
//! <app>/                      running release (top-level entries swapped)
//! <app>/.updater/             state directory: never moved
//!     lock  journal.json  installed.json
//!     downloads/<version>/    verified packages
//!     staging/<version>/      the new tree, extracted on the same file system
//!     releases/<version>/     previous trees, kept for rollback until retention removes them
//!     displaced/<id>/         the release's own copies of preserved paths
//!     debris/<id>/            entries a failed release created, moved out by rollback
//! ```
//!
//! A swap is a [`SwapPlan`]: renames that (1) carry preserved paths
//! (`.env`, `storage/logs`, uploads) from the running tree into the new one —
//! by rename, never copied; preserved top-level entries simply stay — (2)
//! move the running tree's top-level entries aside into
//! `releases/<old>/`, and (3) move the new tree's entries in. Rollback is the
//! same renames in reverse. The plan is written to the journal before the
//! first rename; how far it got is derived from the file system, so recovery
//! resumes exactly after a crash between any two renames.

mod installed;
mod plan;

pub(crate) use installed::{InstalledState, KeptRelease};
pub(crate) use plan::{SwapDirs, SwapPlan};
