//! The copies of a sync. The files wait on one queue, the largest first;
//! one worker per connection keeps up to a window of requests in flight
//! (at most [`WINDOW`] files, a fair share of the queue, and
//! [`WINDOW_BYTES`] bytes, or one larger file): each reply read makes room
//! for the next request, so the connection never waits a round trip
//! between files, and small files cost bandwidth, not round trips. An
//! upload's `SETTIME` goes out once the server confirmed the upload, into
//! the same stream. A file whose connection broke goes back on the queue
//! and is tried again, after a growing wait and on a new connection, up to
//! the retry limit; one the server or the local disk refused fails at
//! once. The others go on either way.

use super::{Direction, Ends, Failed, MAX_PARALLEL, SyncOptions, SyncReport};
use crate::cancel::CancelToken;
use crate::digest::Algorithm;
use crate::error::{Error, ErrorKind, Result};
use crate::events::{self, Event, Op};
use crate::protocol::{Extension, Request};
use crate::session::{Sent, Session};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most files one connection has in flight.
pub(super) const WINDOW: usize = 256;
/// Most bytes one connection has in flight (a larger file goes alone).
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
    /// For its events (boxed: jobs travel in every `Step`).
    record: Box<Record>,
}

/// What a job's `transfer` and `retry` events tell.
#[derive(Default)]
struct Record {
    /// Why it was last lost.
    lost_by: Option<Error>,
    /// When its request last went out.
    sent_at: Option<Instant>,
    /// What arrived: the body's size, and its digest (`algorithm:hex`)
    /// when verified.
    arrived: (u64, Option<String>),
}

impl Job {
    pub(super) fn new(name: &str, size: u64, mtime: u64) -> Job {
        Job {
            name: name.to_string(),
            size,
            mtime,
            attempts: 0,
            record: Box::default(),
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
    /// Files one worker keeps in flight: a fair share of the queue, at
    /// most [`WINDOW`].
    window: usize,
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
        window: jobs.len().div_ceil(1 + extra.len()).clamp(1, WINDOW),
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

impl Shared<'_> {
    /// The next job, if one fits beside `in_flight` files of
    /// `flight_bytes` bytes: at most the window's files and bytes, and
    /// always one when nothing is in flight.
    fn take(&self, in_flight: usize, flight_bytes: u64) -> Take {
        if self.cancel.is_cancelled() || self.outcome().stopped.is_some() {
            return Take::Done;
        }
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let Some(next) = queue.front() else {
            return Take::Done;
        };
        let fits =
            in_flight == 0 || (in_flight < self.window && flight_bytes + next.size <= WINDOW_BYTES);
        match fits {
            true => queue.pop_front().map_or(Take::Done, Take::Job),
            false => Take::Full,
        }
    }

    /// Puts a job back on the queue, untried.
    fn give_back(&self, job: Job) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.push_front(job);
    }

    fn outcome(&self) -> std::sync::MutexGuard<'_, Outcome> {
        self.outcome.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A job's requests went out.
    fn started(&self, job: &mut Job) {
        job.record.sent_at = Some(Instant::now());
        if let Some(counters) = &self.options.progress {
            counters.started(&job.name);
        }
    }

    fn copied(&self, job: &Job) {
        if let Some(counters) = &self.options.progress {
            counters.finished(&job.name, Some(job.size));
        }
        self.outcome().copied.push((job.name.clone(), job.size));
        events::emit(self.options.events.as_ref(), || {
            let (op, remote, local) = self.names(&job.name);
            Event::Transfer {
                op,
                remote,
                local,
                bytes: job.record.arrived.0,
                size: job.record.arrived.0,
                seconds: events::secs(job.record.sent_at.map_or(Duration::ZERO, |at| at.elapsed())),
                resumed_from: 0,
                digest: job.record.arrived.1.clone(),
            }
        });
    }

    /// A copied file's `op`, remote name and local path for its event.
    fn names(&self, name: &str) -> (Op, String, String) {
        let op = match self.direction {
            Direction::Push => Op::PushFile,
            Direction::Pull => Op::PullFile,
        };
        let local = self.ends.local_path(name).display().to_string();
        (op, self.ends.remote_name(name), local)
    }

    /// The `retry` event of a job tried again after waiting `delay`.
    fn retrying(&self, job: &Job, delay: Duration) {
        let Some(error) = &job.record.lost_by else {
            return;
        };
        events::emit(self.options.events.as_ref(), || Event::Retry {
            sync: self.direction.verb(),
            name: job.name.clone(),
            attempt: job.attempts,
            kind: error.kind.as_str(),
            message: error.to_string(),
            delay: events::secs(delay),
        });
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
            job.record.lost_by = Some(error);
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
    /// Returns how long, or `None` if Ctrl-C came meanwhile.
    fn wait(&self, attempt: u32) -> Option<Duration> {
        let base =
            self.options.retry_delay.as_secs_f64() * 2f64.powi(attempt.saturating_sub(1) as i32);
        let jitter = 1.0 + 0.5 * random_fraction();
        let delay = Duration::from_secs_f64((base * jitter).min(MAX_DELAY.as_secs_f64()));
        let end = Instant::now() + delay;
        while Instant::now() < end {
            if self.cancel.is_cancelled() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20).min(end - Instant::now()));
        }
        (!self.cancel.is_cancelled()).then_some(delay)
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

/// What [`Shared::take`] gives.
enum Take {
    Job(Job),
    /// The window is full: read a reply first.
    Full,
    /// Nothing left, or the sync was stopped.
    Done,
}

/// A reply in flight, and what it answers.
enum Awaited {
    /// A `READ` (and its `HASH` when verifying).
    Read(Job),
    /// A `WRITE` (and its `HASH`): what went out.
    Write(Job, Sent),
    /// The `SETTIME` of a confirmed upload.
    SetTime(Job),
}

impl Awaited {
    fn job(self) -> Job {
        match self {
            Awaited::Read(job) | Awaited::Write(job, _) | Awaited::SetTime(job) => job,
        }
    }

    /// Whether it holds a file's place in the window (a `SETTIME` does
    /// not: its file went out already).
    fn counts(&self) -> Option<u64> {
        match self {
            Awaited::Read(job) | Awaited::Write(job, _) => Some(job.size),
            Awaited::SetTime(_) => None,
        }
    }
}

/// One worker: keeps its window full until the queue is empty, each reply
/// read making room for the next request.
fn work(shared: &Shared<'_>, session: &mut Session) {
    let mut flight: VecDeque<Awaited> = VecDeque::new();
    let mut guard = session.cancellable("sync").ok();
    loop {
        let files = flight.iter().filter_map(Awaited::counts).count();
        let bytes = flight.iter().filter_map(Awaited::counts).sum();
        match shared.take(files, bytes) {
            Take::Job(job) => {
                let mut delay = Duration::ZERO;
                if !session.is_connected() {
                    drop(guard.take());
                    match shared.wait(job.attempts.max(1)) {
                        Some(waited) => delay = waited,
                        None => {
                            shared.give_back(job);
                            return;
                        }
                    }
                }
                shared.retrying(&job, delay);
                if !session.is_connected() {
                    match session.connect_again() {
                        Ok(fresh) => {
                            *session = fresh;
                            guard = session.cancellable("sync").ok();
                        }
                        Err(e) => {
                            shared.lost(job, e);
                            continue;
                        }
                    }
                }
                let sent = match shared.direction {
                    Direction::Pull => send_read(shared, session, job),
                    Direction::Push => send_write(shared, session, job),
                };
                match sent {
                    Ok(Some(awaited)) => flight.push_back(awaited),
                    Ok(None) => {}
                    Err((job, e)) => lose_all(shared, job, e, &mut flight),
                }
            }
            Take::Full | Take::Done => {
                let Some(front) = flight.pop_front() else {
                    return;
                };
                match receive(shared, session, front) {
                    Ok(Some(next)) => flight.push_back(next),
                    Ok(None) => {}
                    Err((job, e)) => lose_all(shared, job, e, &mut flight),
                }
            }
        }
    }
}

/// The connection broke over `job`: it and everything in flight go back
/// on the queue (or fail, past their retries).
fn lose_all(shared: &Shared<'_>, job: Job, error: Error, flight: &mut VecDeque<Awaited>) {
    let others = all_lost(flight.drain(..).map(Awaited::job), &error);
    shared.lost(job, error);
    for (job, e) in others {
        shared.lost(job, e);
    }
}

/// A failure while the session is still usable fails the file alone;
/// otherwise the connection broke and the caller loses everything.
type Step = std::result::Result<Option<Awaited>, (Job, Error)>;

fn settle(shared: &Shared<'_>, session: &Session, job: Job, error: Error) -> Step {
    if session.is_connected() {
        shared.failed(&job, error);
        Ok(None)
    } else {
        Err((job, error))
    }
}

/// Sends a download's `READ` (and `HASH`).
fn send_read(shared: &Shared<'_>, session: &mut Session, mut job: Job) -> Step {
    let remote = shared.ends.remote_name(&job.name);
    let op = format!("read `{remote}`");
    let mut sent = session.send_request(&op, Request::Read(remote.clone()));
    if let (Ok(()), Some(algorithm)) = (&sent, shared.algorithm) {
        sent = session.send_extension(&op, hash(algorithm, remote));
    }
    match sent {
        Ok(()) => {
            shared.started(&mut job);
            Ok(Some(Awaited::Read(job)))
        }
        Err(e) => Err((job, e)),
    }
}

/// Sends an upload's header and body (and `HASH`).
fn send_write(shared: &Shared<'_>, session: &mut Session, mut job: Job) -> Step {
    let remote = shared.ends.remote_name(&job.name);
    let op = format!("write `{remote}`");
    let local = shared.ends.local_path(&job.name);
    shared.started(&mut job);
    let mut result = session.send_upload(&op, &local, &remote, shared.algorithm);
    if let (Ok(_), Some(algorithm)) = (&result, shared.algorithm)
        && let Err(e) = session.send_extension(&op, hash(algorithm, remote))
    {
        result = Err(e);
    }
    match result {
        Ok(sent) => Ok(Some(Awaited::Write(job, sent))),
        // the local file could not be opened: nothing went out
        Err(e) => settle(shared, session, job, e),
    }
}

/// Reads the reply (or replies) of the request in flight first.
fn receive(shared: &Shared<'_>, session: &mut Session, awaited: Awaited) -> Step {
    match awaited {
        Awaited::Read(job) => receive_read(shared, session, job),
        Awaited::Write(job, sent) => receive_write(shared, session, job, sent),
        Awaited::SetTime(job) => {
            let op = format!("write `{}`", shared.ends.remote_name(&job.name));
            match session.recv_ok(&op) {
                Ok(()) => {
                    shared.copied(&job);
                    Ok(None)
                }
                Err(e) => {
                    let cause =
                        format!("stored, but its modification time was not set: {}", e.cause);
                    let error = Error::new(e.kind, op, cause);
                    settle(shared, session, job, error)
                }
            }
        }
    }
}

/// A download's body into place (and its digest compared).
fn receive_read(shared: &Shared<'_>, session: &mut Session, mut job: Job) -> Step {
    let remote = shared.ends.remote_name(&job.name);
    let local = shared.ends.local_path(&job.name);
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
        let arrived = (done.size, done.digest.clone());
        done.keep(&op, &local, mtime).map(|()| arrived)
    };
    match receive() {
        Ok((size, digest)) => {
            job.record.arrived = (size, digest.map(|hex| tagged(shared.algorithm, hex)));
            shared.copied(&job);
            Ok(None)
        }
        Err(e) => {
            // a refused READ still has its HASH reply to come
            if let (true, Some(algorithm)) = (digest_pending, shared.algorithm)
                && session.is_connected()
            {
                let _ = session.recv_digest(&op, algorithm);
            }
            settle(shared, session, job, e)
        }
    }
}

/// An upload's confirmation (and its digest compared); then its `SETTIME`
/// goes out, into the same stream.
fn receive_write(shared: &Shared<'_>, session: &mut Session, mut job: Job, sent: Sent) -> Step {
    let name = shared.ends.remote_name(&job.name);
    let op = format!("write `{name}`");
    let mut result = session.recv_upload(&op, sent.size);
    if let Some(algorithm) = shared.algorithm {
        let theirs = session.recv_digest(&op, algorithm);
        result = match (result, theirs) {
            (Ok(()), Ok(theirs)) if Some(&theirs) == sent.digest.as_ref() => Ok(()),
            (Ok(()), Ok(_)) => Err(corrupt(&op, algorithm)),
            (Ok(()), Err(e)) | (Err(e), _) => Err(e),
        };
    }
    if let Err(e) = result {
        return settle(shared, session, job, e);
    }
    let digest = sent.digest.map(|hex| tagged(shared.algorithm, hex));
    job.record.arrived = (sent.size, digest);
    if !shared.settime {
        shared.copied(&job);
        return Ok(None);
    }
    let request = Extension::SetTime {
        mtime: sent.mtime,
        name,
    };
    match session.send_extension(&op, request) {
        Ok(()) => Ok(Some(Awaited::SetTime(job))),
        Err(e) => Err((job, e)),
    }
}

/// A digest as events show it: `algorithm:hex`.
fn tagged(algorithm: Option<Algorithm>, hex: String) -> String {
    match algorithm {
        Some(algorithm) => format!("{}:{hex}", algorithm.name()),
        None => hex,
    }
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
