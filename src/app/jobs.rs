//! One mechanism for every background task of the app (load, save,
//! metrics, keyframes, segmentation, what-if, encoder, fine-tuning).
//!
//! Written by hand eight times, the pattern (`sync_channel(1)` + spawn +
//! `try_recv`) kept the same bugs: a panic left the UI waiting forever, a
//! dead thread looked busy, Cancel was not wired, a stale result landed on
//! the next case. A [`Job`] fixes each once:
//! - the thread is named (`ume-<name>`, clippy.toml forbids unnamed ones);
//! - a panic becomes an error result carrying the panic message;
//! - [`Job::poll`] tells a thread that died without answering from a busy
//!   one;
//! - a [`CancelToken`] is handed to the work, and dropping the job cancels;
//! - each job carries a `tag` (the revision it was started for) so the
//!   owner can drop a result that is stale by the time it arrives;
//! - progress (a message and done/total) and events (training curves) flow
//!   back without the worker ever waiting on the UI for progress.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};

/// Asks a job to stop; every stage of a job checks it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// Ask the work to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was asked.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err("<what> cancelled")` once a stop was asked: `token.check("x")?`
    /// between stages.
    pub fn check(&self, what: &str) -> Result<(), String> {
        if self.is_cancelled() {
            Err(format!("{what} cancelled"))
        } else {
            Ok(())
        }
    }
}

/// What a running job last said about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// What it is doing now.
    pub message: String,
    /// Units done and in all, when it counts.
    pub fraction: Option<(usize, usize)>,
}

/// The worker's side of a job.
pub struct JobCtx<E> {
    cancel: CancelToken,
    progress: Arc<Mutex<Progress>>,
    events: SyncSender<E>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl<E> JobCtx<E> {
    /// The job's cancel token (to hand to deeper code).
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// Whether a stop was asked.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Say what the job is doing (the latest message wins).
    pub fn message(&self, text: impl Into<String>) {
        if let Ok(mut p) = self.progress.lock() {
            p.message = text.into();
        }
        (self.wake)();
    }

    /// Report `done` of `total` units.
    pub fn fraction(&self, done: usize, total: usize) {
        if let Ok(mut p) = self.progress.lock() {
            p.fraction = Some((done, total));
        }
        (self.wake)();
    }

    /// Send an event that must arrive (waits while the UI's queue is full;
    /// returns at once when the job was dropped).
    pub fn emit(&self, event: E) {
        let _ = self.events.send(event);
        (self.wake)();
    }

    /// Wake the UI.
    pub fn wake(&self) {
        (self.wake)();
    }
}

/// A task on its own named thread, with a result of `T` and events of `E`.
pub struct Job<T, E = ()> {
    name: &'static str,
    tag: u64,
    result: Receiver<Result<T, String>>,
    events: Receiver<E>,
    cancel: CancelToken,
    progress: Arc<Mutex<Progress>>,
    /// The thread could not be started: this is the answer.
    failed: Option<String>,
}

/// Queue length for events; the UI drains it every frame.
const EVENT_QUEUE: usize = 1024;

impl<T: Send + 'static, E: Send + 'static> Job<T, E> {
    /// Run `work` on the thread `ume-<name>`; `wake` is called after each
    /// progress report, event and the result (the app passes
    /// `ctx.request_repaint`). `tag` is handed back with the result.
    pub fn spawn(
        name: &'static str,
        tag: u64,
        wake: impl Fn() + Send + Sync + 'static,
        work: impl FnOnce(&JobCtx<E>) -> Result<T, String> + Send + 'static,
    ) -> Job<T, E> {
        let (tx, result) = std::sync::mpsc::sync_channel(1);
        let (etx, events) = std::sync::mpsc::sync_channel(EVENT_QUEUE);
        let cancel = CancelToken::default();
        let progress = Arc::new(Mutex::new(Progress::default()));
        let ctx = JobCtx {
            cancel: cancel.clone(),
            progress: progress.clone(),
            events: etx,
            wake: Arc::new(wake),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("ume-{name}"))
            .spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&ctx)))
                    .unwrap_or_else(|panic| Err(format!("{name} failed: {}", panic_text(&*panic))));
                let _ = tx.send(r);
                ctx.wake();
            });
        Job {
            name,
            tag,
            result,
            events,
            cancel,
            progress,
            failed: spawned
                .err()
                .map(|e| format!("could not start {name}: {e}")),
        }
    }
}

impl<T, E> Job<T, E> {
    /// The finished result, `None` while the work runs. A thread that ended
    /// without answering is reported as an error, never as busy.
    pub fn poll(&mut self) -> Option<Result<T, String>> {
        if let Some(e) = self.failed.take() {
            return Some(Err(e));
        }
        match self.result.try_recv() {
            Ok(r) => Some(r),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                Some(Err(format!("{} stopped without an answer", self.name)))
            }
        }
    }

    /// Events sent so far (drains them).
    pub fn events(&self) -> Vec<E> {
        self.events.try_iter().collect()
    }

    /// Ask the work to stop.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Whether a stop was asked.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The tag given at spawn (the revision the job works on).
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// The job's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The latest progress report.
    pub fn progress(&self) -> Progress {
        self.progress.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

impl<T, E> Drop for Job<T, E> {
    /// A dropped job's work is no longer wanted.
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// At most one job of a kind: starting a new one cancels the old one, and
/// a finished job leaves the slot.
pub struct Slot<T, E = ()>(Option<Job<T, E>>);

impl<T, E> Default for Slot<T, E> {
    fn default() -> Self {
        Slot(None)
    }
}

impl<T, E> Slot<T, E> {
    /// Put `job` in the slot (the previous one, if any, is cancelled).
    pub fn start(&mut self, job: Job<T, E>) {
        self.0 = Some(job);
    }

    /// The running job.
    pub fn job(&self) -> Option<&Job<T, E>> {
        self.0.as_ref()
    }

    /// Whether a job runs.
    pub fn is_running(&self) -> bool {
        self.0.is_some()
    }

    /// The running job's name and progress, for the status bar.
    pub fn describe(&self) -> Option<(&'static str, Progress)> {
        self.0.as_ref().map(|j| (j.name, j.progress()))
    }

    /// Cancel and forget the running job: its result will not be used.
    pub fn abandon(&mut self) {
        self.0 = None;
    }

    /// The finished job's tag and result; the slot is then empty.
    pub fn poll(&mut self) -> Option<(u64, Result<T, String>)> {
        let job = self.0.as_mut()?;
        let r = job.poll()?;
        let tag = job.tag;
        self.0 = None;
        Some((tag, r))
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "it crashed".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn wait<T, E>(job: &mut Job<T, E>) -> Result<T, String> {
        for _ in 0..500 {
            if let Some(r) = job.poll() {
                return r;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("the job never answered");
    }

    #[test]
    fn a_result_comes_back_with_its_tag() {
        let mut slot: Slot<u32> = Slot::default();
        slot.start(Job::spawn("adder", 7, || {}, |_| Ok(2 + 2)));
        for _ in 0..500 {
            if let Some((tag, r)) = slot.poll() {
                assert_eq!((tag, r), (7, Ok(4)));
                assert!(!slot.is_running());
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("no result");
    }

    #[test]
    fn a_panic_is_an_error_naming_the_job_and_the_panic() {
        let mut job: Job<()> = Job::spawn("metrics", 0, || {}, |_| panic!("index out of range"));
        let e = wait(&mut job).unwrap_err();
        assert!(
            e.contains("metrics") && e.contains("index out of range"),
            "{e}"
        );
    }

    #[test]
    fn cancel_reaches_the_work_and_dropping_cancels() {
        let mut job: Job<u32> = Job::spawn(
            "looper",
            0,
            || {},
            |ctx| {
                while !ctx.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                ctx.cancel_token().check("looping").map(|()| 0)
            },
        );
        std::thread::sleep(Duration::from_millis(20));
        assert!(job.poll().is_none(), "still busy");
        job.cancel();
        assert_eq!(wait(&mut job), Err("looping cancelled".to_string()));

        let seen = Arc::new(AtomicBool::new(false));
        let s = seen.clone();
        let job: Job<()> = Job::spawn(
            "dropped",
            0,
            || {},
            move |ctx| {
                while !ctx.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                s.store(true, Ordering::Relaxed);
                Ok(())
            },
        );
        drop(job);
        for _ in 0..500 {
            if seen.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("a dropped job was not cancelled");
    }

    #[test]
    fn progress_and_events_arrive_in_order() {
        let mut job: Job<(), u32> = Job::spawn(
            "counter",
            0,
            || {},
            |ctx| {
                ctx.message("counting");
                for i in 0..5 {
                    ctx.emit(i);
                    ctx.fraction(i as usize + 1, 5);
                }
                Ok(())
            },
        );
        wait(&mut job).unwrap();
        assert_eq!(job.events(), vec![0, 1, 2, 3, 4]);
        let p = job.progress();
        assert_eq!((p.message.as_str(), p.fraction), ("counting", Some((5, 5))));
    }

    #[test]
    fn a_thread_that_dies_without_answering_is_not_busy() {
        // A job whose sender is gone: what poll sees when the thread ended
        // without sending (e.g. killed by an abort in a C library).
        let (tx, result) = std::sync::mpsc::sync_channel::<Result<(), String>>(1);
        let (_etx, events) = std::sync::mpsc::sync_channel::<()>(1);
        drop(tx);
        let mut job = Job {
            name: "keyframes",
            tag: 0,
            result,
            events,
            cancel: CancelToken::default(),
            progress: Arc::default(),
            failed: None,
        };
        let e = job.poll().unwrap().unwrap_err();
        assert!(e.contains("keyframes stopped without an answer"), "{e}");
    }
}
