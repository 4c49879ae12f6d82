//! The operation runner: long operations (check, apply, rollback, backup
//! create / verify / restore) run one at a time on a worker thread of their
//! own, independent of the request that started it — the browser may close;
//! a page loaded later shows the operation still running. Each records the
//! [`ProgressEvent`]s the pipeline reports and broadcasts them to live
//! subscribers (server-sent events); a subscriber gets the current state
//! first, then every later event, so a reconnecting client misses nothing
//! that matters.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;
use updater_core::history::UpdateId;
use updater_core::progress::{Progress, ProgressEvent, ProgressObserver, ProgressSink};
use updater_core::step::Step;

use crate::error::{ErrorDetail, WebError};

/// Finished operations kept for `GET /api/operations`.
const KEPT_OPERATIONS: usize = 50;
/// Progress events kept per operation (the oldest are dropped past it).
const KEPT_EVENTS: usize = 500;

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Ask the release source for the newest release.
    Check,
    /// Install a release.
    Apply,
    /// Go back to the kept release.
    Rollback,
    /// Take a backup.
    BackupCreate,
    /// Read a backup through to check it.
    BackupVerify,
    /// Restore a backup.
    BackupRestore,
}

impl OperationKind {
    /// The snake_case name (also the audit action).
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Check => "check",
            OperationKind::Apply => "apply",
            OperationKind::Rollback => "rollback",
            OperationKind::BackupCreate => "backup_create",
            OperationKind::BackupVerify => "backup_verify",
            OperationKind::BackupRestore => "backup_restore",
        }
    }

    /// What a person reads.
    pub fn label(self) -> &'static str {
        match self {
            OperationKind::Check => "Check for updates",
            OperationKind::Apply => "Update",
            OperationKind::Rollback => "Rollback",
            OperationKind::BackupCreate => "Create backup",
            OperationKind::BackupVerify => "Verify backup",
            OperationKind::BackupRestore => "Restore backup",
        }
    }
}

/// Where an operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationStatus {
    /// Running now.
    Running,
    /// Finished without error.
    Succeeded,
    /// Finished with an error (see `error`).
    Failed,
}

/// An operation as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OperationView {
    /// Its id (per server process, increasing).
    pub id: u64,
    /// What it does.
    pub kind: OperationKind,
    /// Who started it (`web:alice`).
    pub initiated_by: String,
    /// What it acts on (a version, a backup id), if anything.
    pub target: Option<String>,
    /// Where it is.
    pub status: OperationStatus,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Overall progress, 0–100.
    pub percent: u8,
    /// The step running (or the last one).
    pub step: Option<Step>,
    /// The last progress message.
    pub message: String,
    /// Bytes done in the step, when it moves bytes.
    pub bytes_done: u64,
    /// Bytes expected in the step, when known.
    pub bytes_total: Option<u64>,
    /// The history record of the update, rollback or restore it made.
    pub update_id: Option<UpdateId>,
    /// What it produced: the same object as the CLI's `--json` of the
    /// command (`check`, `apply`...), once succeeded.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<ErrorDetail>,
    /// The progress events so far (only in `GET /api/operations/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<ProgressEvent>>,
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum OperationEvent {
    /// A progress event.
    Progress(ProgressEvent),
    /// The operation ended; its final state.
    Finished(Box<OperationView>),
}

/// What a finished job reports.
#[derive(Debug)]
pub struct JobOutcome {
    /// The `--json` object of the command.
    pub result: serde_json::Value,
    /// The history record it made, if any.
    pub update_id: Option<UpdateId>,
}

/// One operation.
#[derive(Debug)]
pub struct Operation {
    state: Mutex<OperationView>,
    events: Mutex<VecDeque<ProgressEvent>>,
    sender: broadcast::Sender<OperationEvent>,
}

impl Operation {
    fn lock(&self) -> MutexGuard<'_, OperationView> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Its id.
    pub fn id(&self) -> u64 {
        self.lock().id
    }

    /// Its state, without the events.
    pub fn view(&self) -> OperationView {
        self.lock().clone()
    }

    /// Its state with every kept event.
    pub fn view_with_events(&self) -> OperationView {
        let state = self.lock();
        let mut view = state.clone();
        view.events = Some(
            self.events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect(),
        );
        view
    }

    /// The current state and a receiver of every event after it, taken
    /// together (no event falls between them).
    pub fn subscribe(&self) -> (OperationView, broadcast::Receiver<OperationEvent>) {
        let state = self.lock();
        (state.clone(), self.sender.subscribe())
    }

    fn progress(&self, event: &ProgressEvent) {
        let mut state = self.lock();
        if state.status != OperationStatus::Running {
            return;
        }
        state.percent = state.percent.max(event.percent.min(100));
        state.step = Some(event.step);
        state.message = event.message.clone();
        state.bytes_done = event.bytes_done;
        state.bytes_total = event.bytes_total;
        let event = ProgressEvent {
            percent: state.percent,
            ..event.clone()
        };
        {
            let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
            if events.len() >= KEPT_EVENTS {
                events.pop_front();
            }
            events.push_back(event.clone());
        }
        // No receiver is not an error: nobody watches.
        let _ = self.sender.send(OperationEvent::Progress(event));
    }

    fn finish(&self, outcome: Result<JobOutcome, WebError>, update_id: Option<UpdateId>) {
        let mut state = self.lock();
        state.finished_at = Some(Utc::now());
        match outcome {
            Ok(done) => {
                state.status = OperationStatus::Succeeded;
                state.percent = 100;
                state.message = "done".to_string();
                state.update_id = done.update_id.or(update_id);
                state.result = Some(done.result);
            }
            Err(error) => {
                state.status = OperationStatus::Failed;
                state.message = error.message();
                state.update_id = update_id;
                state.error = Some(error.body().error);
            }
        }
        let _ = self
            .sender
            .send(OperationEvent::Finished(Box::new(state.clone())));
    }
}

/// The observer a job reports to: progress events and backup progress.
#[derive(Debug, Clone)]
pub struct Reporter {
    operation: Arc<Operation>,
}

impl ProgressObserver for Reporter {
    fn on_progress(&self, event: &ProgressEvent) {
        self.operation.progress(event);
    }
}

impl ProgressSink for Reporter {
    fn report(&self, progress: &Progress) {
        self.operation.progress(&ProgressEvent {
            step: Step::Backup,
            percent: progress.percent,
            bytes_done: progress.bytes_done,
            bytes_total: progress.bytes_total,
            files_done: progress.files_done,
            message: progress.message.clone(),
        });
    }
}

/// The runner: at most one operation at a time.
///
/// ```
/// use std::sync::Arc;
/// use updater_web::operations::{JobOutcome, Launch, OperationKind, OperationStatus, Operations};
///
/// let operations = Arc::new(Operations::new());
/// let launch = Launch { kind: OperationKind::Check, initiated_by: "web:alice".into(), target: None };
/// let op = operations.start(
///     launch.clone(),
///     |_reporter| Ok(JobOutcome { result: serde_json::json!({"ok": true}), update_id: None }),
///     |_started| None,
/// )?;
/// while op.view().status == OperationStatus::Running {
///     std::thread::sleep(std::time::Duration::from_millis(5));
/// }
/// assert_eq!(op.view().percent, 100);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct Operations {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    running: Option<Arc<Operation>>,
    all: VecDeque<Arc<Operation>>,
}

/// What [`Operations::start`] needs besides the job.
#[derive(Debug, Clone)]
pub struct Launch {
    /// What it does.
    pub kind: OperationKind,
    /// Who asked (`web:alice`).
    pub initiated_by: String,
    /// What it acts on.
    pub target: Option<String>,
}

impl Operations {
    /// No operation yet.
    pub fn new() -> Self {
        Operations::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The running operation, if any.
    pub fn running(&self) -> Option<Arc<Operation>> {
        let inner = self.lock();
        inner
            .running
            .clone()
            .filter(|op| op.view().status == OperationStatus::Running)
    }

    /// The operation with `id`, if kept.
    pub fn get(&self, id: u64) -> Option<Arc<Operation>> {
        self.lock().all.iter().find(|op| op.id() == id).cloned()
    }

    /// The kept operations, newest first.
    pub fn list(&self) -> Vec<OperationView> {
        self.lock().all.iter().rev().map(|op| op.view()).collect()
    }

    /// Starts `job` on a worker thread, unless an operation is running
    /// ([`WebError::Busy`] naming it). `find_update` runs after a failed
    /// job to find the history record it left.
    pub fn start<J, F>(
        self: &Arc<Self>,
        launch: Launch,
        job: J,
        find_update: F,
    ) -> Result<Arc<Operation>, WebError>
    where
        J: FnOnce(&Reporter) -> Result<JobOutcome, WebError> + Send + 'static,
        F: FnOnce(DateTime<Utc>) -> Option<UpdateId> + Send + 'static,
    {
        let operation = {
            let mut inner = self.lock();
            if let Some(running) = &inner.running {
                let view = running.view();
                if view.status == OperationStatus::Running {
                    return Err(WebError::Busy {
                        holder: holder_text(&view),
                    });
                }
            }
            inner.next_id += 1;
            let (sender, _) = broadcast::channel(1024);
            let operation = Arc::new(Operation {
                state: Mutex::new(OperationView {
                    id: inner.next_id,
                    kind: launch.kind,
                    initiated_by: launch.initiated_by,
                    target: launch.target,
                    status: OperationStatus::Running,
                    started_at: Utc::now(),
                    finished_at: None,
                    percent: 0,
                    step: None,
                    message: "starting".to_string(),
                    bytes_done: 0,
                    bytes_total: None,
                    update_id: None,
                    result: None,
                    error: None,
                    events: None,
                }),
                events: Mutex::default(),
                sender,
            });
            inner.running = Some(operation.clone());
            inner.all.push_back(operation.clone());
            while inner.all.len() > KEPT_OPERATIONS {
                inner.all.pop_front();
            }
            operation
        };
        let reporter = Reporter {
            operation: operation.clone(),
        };
        let started_at = operation.view().started_at;
        let runner = Arc::clone(self);
        let worker = operation.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("updater-web-op-{}", operation.id()))
            .spawn(move || {
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| job(&reporter)))
                    .unwrap_or_else(|_| Err(WebError::Internal("the operation panicked".into())));
                let update_id = match &outcome {
                    Ok(done) => done.update_id,
                    Err(_) => find_update(started_at),
                };
                worker.finish(outcome, update_id);
                let mut inner = runner.lock();
                if inner
                    .running
                    .as_ref()
                    .is_some_and(|r| Arc::ptr_eq(r, &worker))
                {
                    inner.running = None;
                }
            });
        if let Err(error) = spawned {
            let message = format!("cannot start a worker thread: {error}");
            operation.finish(Err(WebError::Internal(message.clone())), None);
            self.lock().running = None;
            return Err(WebError::Internal(message));
        }
        Ok(operation)
    }
}

/// `apply by web:alice (operation 3, since 12:00:00 UTC)`.
pub(crate) fn holder_text(view: &OperationView) -> String {
    format!(
        "{} by {} (operation {}, since {})",
        view.kind.as_str(),
        view.initiated_by,
        view.id,
        view.started_at.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn launch() -> Launch {
        Launch {
            kind: OperationKind::Apply,
            initiated_by: "web:alice".into(),
            target: Some("1.1.0".into()),
        }
    }

    #[test]
    fn a_second_operation_while_one_runs_is_refused_naming_the_first() {
        let ops = Arc::new(Operations::new());
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let first = ops
            .start(
                launch(),
                move |_| {
                    gate.recv().ok();
                    Ok(JobOutcome {
                        result: serde_json::json!({}),
                        update_id: None,
                    })
                },
                |_| None,
            )
            .unwrap();
        let error = ops
            .start(launch(), |_| panic!("must not run"), |_| None)
            .unwrap_err();
        let WebError::Busy { holder } = &error else {
            panic!("{error:?}")
        };
        assert!(
            holder.starts_with(&format!("apply by web:alice (operation {}", first.id())),
            "{holder}"
        );
        release.send(()).unwrap();
        while ops.running().is_some() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(first.view().status, OperationStatus::Succeeded);
        assert_eq!(first.view().percent, 100);
    }

    #[test]
    fn a_subscriber_gets_the_state_then_every_later_event_in_order() {
        let ops = Arc::new(Operations::new());
        let (go, gate) = std::sync::mpsc::channel::<()>();
        let op = ops
            .start(
                launch(),
                move |r| {
                    r.on_progress(&ProgressEvent::message(Step::Download, 10, "a"));
                    gate.recv().ok();
                    r.on_progress(&ProgressEvent::message(Step::Swap, 60, "b"));
                    Err(WebError::invalid("x", "y"))
                },
                |_| Some(7),
            )
            .unwrap();
        while op.view().percent < 10 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let (state, mut events) = op.subscribe();
        assert_eq!(state.message, "a");
        go.send(()).unwrap();
        let Ok(OperationEvent::Progress(event)) = events.blocking_recv() else {
            panic!("a progress event first")
        };
        assert_eq!((event.step, event.percent), (Step::Swap, 60));
        let Ok(OperationEvent::Finished(view)) = events.blocking_recv() else {
            panic!("then the end")
        };
        assert_eq!(view.status, OperationStatus::Failed);
        assert_eq!(view.update_id, Some(7));
        assert_eq!(view.error.unwrap().kind, "invalid_input");
    }
}
