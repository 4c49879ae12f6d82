//! Hooks: commands run inside the maintenance window after the swap (clear
//! caches, restart workers) and again after a rollback.

use std::path::PathBuf;

use crate::command::{ChildLedger, ShellCommand};
use crate::error::Result;
use crate::version::Version;

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookEvent {
    /// After the new release was swapped in and migrated, before the health check.
    AfterSwap,
    /// After a rollback put the old release back.
    AfterRollback,
}

impl HookEvent {
    /// `after_swap` or `after_rollback`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::AfterSwap => "after_swap",
            HookEvent::AfterRollback => "after_rollback",
        }
    }
}

/// What a hook is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookContext {
    /// Why it runs.
    pub event: HookEvent,
    /// The application directory.
    pub app_dir: PathBuf,
    /// The release that was running before.
    pub from: Version,
    /// The release that runs now.
    pub to: Version,
    /// Where commands record their children (see [`MigrationContext::children`](crate::migrate::MigrationContext::children)).
    pub children: Option<ChildLedger>,
}

/// A step run after a swap or a rollback.
///
/// # Contract
///
/// An error after a swap rolls the update back; an error after a rollback is
/// recorded but does not stop the rollback. Hooks must be idempotent: recovery
/// may run them again.
pub trait Hook: Send + Sync {
    /// A short description for logs.
    fn describe(&self) -> String;
    /// Runs the hook.
    fn run(&self, ctx: &HookContext) -> Result<()>;
}

crate::forward_trait!(Hook:
    fn describe(&self) -> String;
    fn run(&self, ctx: &HookContext) -> Result<()>;
);

/// Runs a shell command in the application directory for the events it is
/// registered for, with `UPDATER_HOOK_EVENT`, `UPDATER_FROM_VERSION` and
/// `UPDATER_TO_VERSION` set.
///
/// ```
/// use updater_core::command::ShellCommand;
/// use updater_core::hook::{CommandHook, HookEvent};
/// let hook = CommandHook::after_swap(ShellCommand::new("php artisan config:cache"));
/// assert!(hook.runs_on(HookEvent::AfterSwap) && !hook.runs_on(HookEvent::AfterRollback));
/// ```
#[derive(Debug, Clone)]
pub struct CommandHook {
    command: ShellCommand,
    events: Vec<HookEvent>,
}

impl CommandHook {
    /// Runs after each swap.
    pub fn after_swap(command: ShellCommand) -> Self {
        CommandHook {
            command,
            events: vec![HookEvent::AfterSwap],
        }
    }

    /// Runs after each rollback.
    pub fn after_rollback(command: ShellCommand) -> Self {
        CommandHook {
            command,
            events: vec![HookEvent::AfterRollback],
        }
    }

    /// Runs after swaps and rollbacks.
    pub fn always(command: ShellCommand) -> Self {
        CommandHook {
            command,
            events: vec![HookEvent::AfterSwap, HookEvent::AfterRollback],
        }
    }

    /// Whether it runs for `event`.
    pub fn runs_on(&self, event: HookEvent) -> bool {
        self.events.contains(&event)
    }
}

impl Hook for CommandHook {
    fn describe(&self) -> String {
        format!("command `{}`", self.command.describe())
    }

    fn run(&self, ctx: &HookContext) -> Result<()> {
        if !self.runs_on(ctx.event) {
            return Ok(());
        }
        let command = match &ctx.children {
            Some(ledger) => self.command.clone().with_ledger(ledger.clone()),
            None => self.command.clone(),
        };
        command
            .with_env("UPDATER_HOOK_EVENT", ctx.event.as_str())
            .with_env("UPDATER_FROM_VERSION", ctx.from.to_string())
            .with_env("UPDATER_TO_VERSION", ctx.to.to_string())
            .run(&format!("hook {}", ctx.event.as_str()), Some(&ctx.app_dir))
            .map(drop)
    }
}
