//! Stopping work in flight from another thread: the signals that ask for
//! it (SIGINT, SIGTERM, SIGHUP, each told apart), and the [`CancelToken`]
//! they set — a flag that remembers which signal, plus the [`Closer`]s of
//! the transfers in flight (one per session: a sync runs several), which
//! shut their connections down so that a blocked read or write returns at
//! once.

use crate::conn::Closer;
use std::net::Shutdown;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A signal that stops `ioe`'s work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT: Ctrl-C at a terminal.
    Interrupt,
    /// SIGTERM: `kill`, systemd, a container stopping.
    Terminate,
    /// SIGHUP: the terminal went away.
    Hangup,
}

impl Signal {
    /// Every signal [`on_signals`] handles.
    const ALL: [Signal; 3] = [Signal::Interrupt, Signal::Terminate, Signal::Hangup];

    /// The signal's number (2, 15, 1).
    pub fn number(self) -> i32 {
        match self {
            Signal::Interrupt => signal_hook::consts::SIGINT,
            Signal::Terminate => signal_hook::consts::SIGTERM,
            Signal::Hangup => signal_hook::consts::SIGHUP,
        }
    }

    /// The exit status after it, as shells report a process it ended:
    /// 128 + its number (130, 143, 129).
    pub fn exit_status(self) -> u8 {
        // the numbers are 1, 2 and 15
        128 + self.number() as u8
    }

    /// How messages name it: `Ctrl-C (SIGINT)`, `SIGTERM`, `SIGHUP`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "Ctrl-C (SIGINT)",
            Signal::Terminate => "SIGTERM",
            Signal::Hangup => "SIGHUP",
        }
    }

    fn from_number(number: i32) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.number() == number)
    }
}

/// Calls `handler` with each SIGINT, SIGTERM and SIGHUP that arrives, on a
/// thread of its own (so it may lock, print and exit, which a signal
/// handler itself may not). From then on these signals no longer end the
/// process by themselves.
pub fn on_signals(mut handler: impl FnMut(Signal) + Send + 'static) -> std::io::Result<()> {
    let numbers = Signal::ALL.map(Signal::number);
    let mut signals = signal_hook::iterator::Signals::new(numbers)?;
    std::thread::Builder::new()
        .name("ioe-signals".into())
        .spawn(move || {
            for number in signals.forever() {
                if let Some(signal) = Signal::from_number(number) {
                    handler(signal);
                }
            }
        })?;
    Ok(())
}

/// A cloneable handle; every clone sees the same state.
#[derive(Clone, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

/// `state` when not cancelled.
const RUNNING: u8 = 0;
/// `state` after [`CancelToken::cancel`], which names no signal.
const CANCELLED: u8 = u8::MAX;

#[derive(Default)]
struct Inner {
    /// [`RUNNING`], [`CANCELLED`], or the number of the signal that
    /// cancelled.
    state: AtomicU8,
    /// The connections of the transfers in flight, by guard number.
    in_flight: Mutex<Vec<(u64, Closer)>>,
    next_guard: AtomicU64,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Requests cancellation: the transfer in flight, if any, fails at once.
    pub fn cancel(&self) {
        self.stop(CANCELLED);
    }

    /// Requests cancellation because `signal` arrived; errors and reports
    /// then name the signal.
    pub fn cancel_by(&self, signal: Signal) {
        self.stop(signal.number() as u8);
    }

    fn stop(&self, state: u8) {
        self.inner.state.store(state, Ordering::SeqCst);
        for (_, closer) in self.lock().iter() {
            let _ = closer.shutdown(Shutdown::Both);
        }
    }

    /// Whether [`cancel`](Self::cancel) or [`cancel_by`](Self::cancel_by)
    /// was called since the last [`reset`](Self::reset).
    pub fn is_cancelled(&self) -> bool {
        self.inner.state.load(Ordering::SeqCst) != RUNNING
    }

    /// The signal that cancelled, if a signal did.
    pub fn signal(&self) -> Option<Signal> {
        Signal::from_number(i32::from(self.inner.state.load(Ordering::SeqCst)))
    }

    /// What stopped the work, for messages: `stopped by SIGTERM`,
    /// `stopped by Ctrl-C (SIGINT)`, or `cancelled` when no signal did.
    pub fn cause(&self) -> String {
        match self.signal() {
            Some(signal) => format!("stopped by {}", signal.name()),
            None => "cancelled".to_string(),
        }
    }

    /// Clears the flag (the REPL does so before each line).
    pub fn reset(&self) {
        self.inner.state.store(RUNNING, Ordering::SeqCst);
    }

    /// Registers the connection of a transfer that is starting; the guard
    /// unregisters it.
    pub(crate) fn guard(&self, closer: Closer) -> InFlight {
        let id = self.inner.next_guard.fetch_add(1, Ordering::Relaxed);
        let mut closers = self.lock();
        if self.is_cancelled() {
            // cancelled just before the transfer started: fail it at once
            let _ = closer.shutdown(Shutdown::Both);
        }
        closers.push((id, closer));
        drop(closers);
        InFlight {
            token: self.clone(),
            id,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Closer)>> {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps a connection registered with a [`CancelToken`] while a transfer runs.
pub(crate) struct InFlight {
    token: CancelToken,
    id: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.token.lock().retain(|(id, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_remembers_which_signal_cancelled_it() {
        let token = CancelToken::new();
        assert_eq!((token.is_cancelled(), token.signal()), (false, None));
        token.cancel_by(Signal::Terminate);
        assert!(token.is_cancelled());
        assert_eq!(token.signal(), Some(Signal::Terminate));
        assert_eq!(token.cause(), "stopped by SIGTERM");
        token.reset();
        assert!(!token.is_cancelled());
        token.cancel();
        assert_eq!(
            (token.signal(), token.cause().as_str()),
            (None, "cancelled")
        );
        token.cancel_by(Signal::Interrupt);
        assert_eq!(token.cause(), "stopped by Ctrl-C (SIGINT)");
    }

    #[test]
    fn exit_statuses_are_128_plus_the_signal() {
        let statuses = Signal::ALL.map(Signal::exit_status);
        assert_eq!(statuses, [130, 143, 129]);
    }
}
