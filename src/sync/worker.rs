//! The copies of a sync. The files wait on one queue, the largest first;
//! one worker per connection takes them in batches (at most [`WINDOW`]
//! files and [`WINDOW_BYTES`] bytes, or one larger file), sends the whole
//! batch's requests, then reads the replies in order — so a batch of small
//! files costs one round trip (two for uploads, whose mtimes are set once
//! the server confirmed them). A file whose connection broke goes back on
//! the queue and is tried again, after a growing wait and on a new
//! connection, up to the retry limit; one the server or the local disk
//! refused fails at once. The others go on either way.

use super::{Direction, Ends, Failed, MAX_PARALLEL, SyncOptions, SyncReport};
use crate::cancel::CancelToken;
use crate::digest::Algorithm;
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::{Extension, Request};
use crate::session::Session;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most requests one batch keeps in flight.
pub(super) const WINDOW: usize = 64;
/// Most bytes one batch moves (a larger file goes alone).
const WINDOW_BYTES: u64 = 4 * 1024 * 1024;
/// The longest wait before a retry.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// One file to copy.
pub(super) struct Job {
    name: String,
    size: u64,
    mtime: u64,
    /// Times it was tried and lost its connection.
    attempts: u32,
}

impl Job {
    pub(super) fn new(name: &str, size: u64, mtime: u64) -> Job {
        Job {
            name: name.to_string(),
            size,
            mtime,
            attempts: 0,
        }
    }
}

/// What the workers share.
struct Shared<'a> {
    direction: Direction,
    ends: &'a Ends<'a>,
    options: &'a SyncOptions,
    algorithm: Option<Algorithm>,
    /// Whether uploads get their mtime with `SETTIME`.
    settime: bool,
    /// How many workers share the queue.
    workers: usize,
    cancel: CancelToken,
    queue: Mutex<VecDeque<Job>>,
    outcome: Mutex<Outcome>,
}

#[derive(Default)]
struct Outcome {
    copied: Vec<(String, u64)>,
    failed: Vec<Failed>,
    retries: u64,
    /// Ctrl-C: everything stops.
    stopped: Option<Error>,
}

/// Copies every job, on `session` and up to `options.parallel - 1` more
/// connections, and adds what happened to `report`. Fails only on Ctrl-C.
pub(super) fn copy_all(
    session: &mut Session,
    direction: Direction,
    ends: &Ends<'_>,
    op: &str,
    mut jobs: Vec<Job>,
    options: &SyncOptions,
    report: &mut SyncReport,
) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let algorithm = match options.verify {
        true => Some(session.best_hash(op)?),
        false => None,
    };
    let settime = direction == Direction::Push && session.features_for(op)?.settime;
    jobs.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.name.cmp(&b.name)));
    if let Some(counters) = &options.progress {
        counters.planned(jobs.len() as u64, jobs.iter().map(|j| j.size).sum());
    }
    let workers = options.parallel.clamp(1, MAX_PARALLEL).min(jobs.len());
    // a server that has no slot for another connection gets fewer workers
    let extra: Vec<Session> = (1..workers)
        .map_while(|_| session.connect_again().ok())
        .collect();
    let shared = Shared {
        direction,
        ends,
        options,
        algorithm,
        settime,
        workers: 1 + extra.len(),
        cancel: session.cancel_token(),
        queue: Mutex::new(jobs.into()),
        outcome: Mutex::new(Outcome::default()),
    };
    std::thread::scope(|scope| {
        for mut other in extra {
            let shared = &shared;
            scope.spawn(move || {
                work(shared, &mut other);
                let _ = other.bye();
            });
        }
        work(&shared, session);
    });
    let outcome = shared
        .outcome
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(stopped) = outcome.stopped {
        return Err(stopped);
    }
    let mut copied = outcome.copied;
    copied.sort();
    report.bytes += copied.iter().map(|(_, size)| size).sum::<u64>();
    report.copied.extend(copied);
    let mut failed = outcome.failed;
    failed.sort_by(|a, b| a.name.cmp(&b.name));
    report.failed.extend(failed);
    report.retries += outcome.retries;
    Ok(())
}

/// One worker: batches until the queue is empty or Ctrl-C.
fn work(shared: &Shared<'_>, session: &mut Session) {
    while let Some(batch) = shared.take_batch() {
        if !session.is_connected() {
            let attempt = batch.iter().map(|j| j.attempts).max().unwrap_or(1);
            if !shared.wait(attempt) {
                shared.give_back(batch);
                return;
            }
            match session.connect_again() {
                Ok(fresh) => *session = fresh,
                Err(e) => {
                    for job in batch {
                        shared.lost(job, e.clone());
                    }
                    continue;
                }
            }
        }
        let lost = match shared.direction {
            Direction::Pull => pull(shared, session, batch),
            Direction::Push => push(shared, session, batch),
        };
        for (job, e) in lost {
            shared.lost(job, e);
        }
    }
}

impl Shared<'_> {
    /// The next batch: at most [`WINDOW`] files (and no more than a fair
    /// share of what is left) and [`WINDOW_BYTES`] bytes, or one larger
    /// file. `None` when nothing is left or the sync
    /// was stopped.
    fn take_batch(&self) -> Option<Vec<Job>> {
        if self.cancel.is_cancelled() || self.outcome().stopped.is_some() {
            return None;
        }
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        // a fair share, so that every worker has some of a short queue
        let share = queue.len().div_ceil(self.workers).clamp(1, WINDOW);
        let mut batch: Vec<Job> = Vec::new();
        let mut bytes = 0;
        while let Some(job) = queue.front() {
            let fits =
                batch.is_empty() || (batch.len() < share && bytes + job.size <= WINDOW_BYTES);
            if !fits {
                break;
            }
            bytes += job.size;
            batch.extend(queue.pop_front());
        }
        (!batch.is_empty()).then_some(batch)
    }

    /// Puts jobs back on the queue, untried.
    fn give_back(&self, batch: Vec<Job>) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        for job in batch.into_iter().rev() {
            queue.push_front(job);
        }
    }

    fn outcome(&self) -> std::sync::MutexGuard<'_, Outcome> {
        self.outcome.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A job's requests went out.
    fn started(&self, job: &Job) {
        if let Some(counters) = &self.options.progress {
            counters.started(&job.name);
        }
    }

    fn copied(&self, job: &Job) {
        if let Some(counters) = &self.options.progress {
            counters.finished(&job.name, Some(job.size));
        }
        self.outcome().copied.push((job.name.clone(), job.size));
    }

    fn failed(&self, job: &Job, error: Error) {
        if let Some(counters) = &self.options.progress {
            counters.finished(&job.name, None);
        }
        if error.kind == ErrorKind::Cancelled {
            self.outcome().stopped.get_or_insert(error);
            return;
        }
        self.outcome().failed.push(Failed {
            name: job.name.clone(),
            kind: error.kind,
            message: error.to_string(),
        });
    }

    /// A job whose connection broke: back on the queue while retries are
    /// left and the cause may pass; failed otherwise.
    fn lost(&self, mut job: Job, error: Error) {
        let passing = matches!(
            error.kind,
            ErrorKind::ConnectionLost | ErrorKind::ConnectFailed
        );
        if passing && job.attempts < self.options.retries {
            if let Some(counters) = &self.options.progress {
                counters.landed(&job.name);
            }
            job.attempts += 1;
            self.outcome().retries += 1;
            self.queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(job);
        } else {
            self.failed(&job, error);
        }
    }

    /// Waits before the `attempt`-th retry: `retry_delay` doubled each
    /// time, plus up to half again at random, at most [`MAX_DELAY`].
    /// False if Ctrl-C came meanwhile.
    fn wait(&self, attempt: u32) -> bool {
        let base =
            self.options.retry_delay.as_secs_f64() * 2f64.powi(attempt.saturating_sub(1) as i32);
        let jitter = 1.0 + 0.5 * random_fraction();
        let delay = Duration::from_secs_f64((base * jitter).min(MAX_DELAY.as_secs_f64()));
        let end = Instant::now() + delay;
        while Instant::now() < end {
            if self.cancel.is_cancelled() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20).min(end - Instant::now()));
        }
        !self.cancel.is_cancelled()
    }
}

/// A number in [0, 1), different from call to call (for back-off jitter:
/// workers that lost their connections together should not all come back
/// at the same moment).
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Jobs not done because the connection broke, with the cause.
type Lost = Vec<(Job, Error)>;

/// `jobs`, lost with the connection that `error` closed. When that error
/// was one file's own (its local disk failed with much still to come), the
/// others are merely cut off: they get a lost connection, and are retried.
fn all_lost(jobs: impl IntoIterator<Item = Job>, error: &Error) -> Lost {
    let passing = matches!(
        error.kind,
        ErrorKind::ConnectionLost | ErrorKind::ConnectFailed | ErrorKind::Cancelled
    );
    jobs.into_iter()
        .map(|job| {
            let error = match passing {
                true => error.clone(),
                false => Error::new(
                    ErrorKind::ConnectionLost,
                    format!("copy `{}`", job.name),
                    format!("the connection was closed after another file failed ({error})"),
                ),
            };
            (job, error)
        })
        .collect()
}

/// Downloads a batch: every `READ` (and `HASH`) first, then each reply.
fn pull(shared: &Shared<'_>, session: &mut Session, batch: Vec<Job>) -> Lost {
    let ends = shared.ends;
    let guard = session.cancellable("pull");
    let _guard = match guard {
        Ok(guard) => guard,
        Err(e) => return all_lost(batch, &e),
    };
    for job in &batch {
        let remote = ends.remote_name(&job.name);
        let op = format!("read `{remote}`");
        let mut sent = session.send_request(&op, Request::Read(remote.clone()));
        if let (Ok(()), Some(algorithm)) = (&sent, shared.algorithm) {
            sent = session.send_extension(&op, hash(algorithm, remote));
        }
        if let Err(e) = sent {
            return all_lost(batch, &e);
        }
        shared.started(job);
    }
    let mut jobs = batch.into_iter();
    while let Some(job) = jobs.next() {
        let remote = ends.remote_name(&job.name);
        let local = ends.local_path(&job.name);
        let op = format!("read `{remote}`");
        let mut digest_pending = shared.algorithm.is_some();
        let mut receive = || {
            let done = session.recv_download(&op, &remote, &local, shared.algorithm)?;
            if let Some(algorithm) = shared.algorithm {
                digest_pending = false;
                let theirs = session.recv_digest(&op, algorithm)?;
                if Some(&theirs) != done.digest.as_ref() {
                    return Err(corrupt(&op, algorithm));
                }
            }
            // the listing's mtime, unless the file changed since
            let mtime = (done.size == job.size).then_some(job.mtime);
            done.keep(&op, &local, mtime)
        };
        match receive() {
            Ok(()) => shared.copied(&job),
            Err(e) if session.is_connected() => {
                // a refused READ still has its HASH reply to come
                if let (true, Some(algorithm)) = (digest_pending, shared.algorithm) {
                    let _ = session.recv_digest(&op, algorithm);
                }
                shared.failed(&job, e);
            }
            Err(e) => {
                let mut lost = vec![(job, e.clone())];
                lost.extend(all_lost(jobs, &e));
                return lost;
            }
        }
    }
    Vec::new()
}

/// Uploads a batch: every header and body (and `HASH`), then each reply,
/// then the mtimes of those the server stored.
fn push(shared: &Shared<'_>, session: &mut Session, batch: Vec<Job>) -> Lost {
    let ends = shared.ends;
    let guard = session.cancellable("push");
    let _guard = match guard {
        Ok(guard) => guard,
        Err(e) => return all_lost(batch, &e),
    };
    let mut sent = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    while let Some(job) = jobs.next() {
        let remote = ends.remote_name(&job.name);
        let op = format!("write `{remote}`");
        let local = ends.local_path(&job.name);
        shared.started(&job);
        let mut result = session.send_upload(&op, &local, &remote, shared.algorithm);
        if let (Ok(_), Some(algorithm)) = (&result, shared.algorithm)
            && let Err(e) = session.send_extension(&op, hash(algorithm, remote))
        {
            result = Err(e);
        }
        match result {
            Ok(out) => sent.push((job, out)),
            // the local file could not be opened: nothing went out
            Err(e) if session.is_connected() => shared.failed(&job, e),
            Err(e) => {
                let mut lost: Lost = sent.into_iter().map(|(job, _)| (job, e.clone())).collect();
                lost.push((job, e.clone()));
                lost.extend(all_lost(jobs, &e));
                return lost;
            }
        }
    }
    let mut stored = Vec::with_capacity(sent.len());
    let mut replies = sent.into_iter();
    while let Some((job, out)) = replies.next() {
        let op = format!("write `{}`", ends.remote_name(&job.name));
        let mut result = session.recv_upload(&op, out.size);
        if let Some(algorithm) = shared.algorithm {
            let theirs = session.recv_digest(&op, algorithm);
            result = match (result, theirs) {
                (Ok(()), Ok(theirs)) if Some(&theirs) == out.digest.as_ref() => Ok(()),
                (Ok(()), Ok(_)) => Err(corrupt(&op, algorithm)),
                (Ok(()), Err(e)) | (Err(e), _) => Err(e),
            };
        }
        match result {
            Ok(()) => stored.push((job, out.mtime)),
            Err(e) if session.is_connected() => shared.failed(&job, e),
            Err(e) => {
                let mut lost = vec![(job, e.clone())];
                lost.extend(replies.map(|(job, _)| (job, e.clone())));
                lost.extend(stored.into_iter().map(|(job, _)| (job, e.clone())));
                return lost;
            }
        }
    }
    if !shared.settime {
        for (job, _) in &stored {
            shared.copied(job);
        }
        return Vec::new();
    }
    for (job, mtime) in &stored {
        let name = ends.remote_name(&job.name);
        let op = format!("write `{name}`");
        let request = Extension::SetTime {
            mtime: *mtime,
            name,
        };
        if let Err(e) = session.send_extension(&op, request) {
            return all_lost(stored.into_iter().map(|(job, _)| job), &e);
        }
    }
    let mut stored = stored.into_iter();
    while let Some((job, _)) = stored.next() {
        let op = format!("write `{}`", ends.remote_name(&job.name));
        match session.recv_ok(&op) {
            Ok(()) => shared.copied(&job),
            Err(e) if session.is_connected() => {
                let cause = format!("stored, but its modification time was not set: {}", e.cause);
                shared.failed(&job, Error::new(e.kind, op, cause));
            }
            Err(e) => {
                let mut lost = vec![(job, e.clone())];
                lost.extend(all_lost(stored.map(|(job, _)| job), &e));
                return lost;
            }
        }
    }
    Vec::new()
}

fn hash(algorithm: Algorithm, name: String) -> Extension {
    Extension::Hash {
        algorithm: algorithm.name().to_string(),
        name,
    }
}

fn corrupt(op: &str, algorithm: Algorithm) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        op,
        format!(
            "the {} digests of the two copies differ: the file changed during the \
             transfer or was damaged on the way",
            algorithm.name()
        ),
    )
}
