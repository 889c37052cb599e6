//! Cancelling a transfer from another thread (the Ctrl-C handler): a flag,
//! plus the socket of the transfer in flight, which is shut down so that a
//! blocked read or write returns at once.

use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A cloneable handle; every clone sees the same state.
#[derive(Clone, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    cancelled: AtomicBool,
    in_flight: Mutex<Option<Arc<TcpStream>>>,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Requests cancellation: the transfer in flight, if any, fails at once.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        if let Some(stream) = self.lock().as_ref() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Whether [`cancel`](Self::cancel) was called since the last
    /// [`reset`](Self::reset).
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Clears the flag (the REPL does so before each line).
    pub fn reset(&self) {
        self.inner.cancelled.store(false, Ordering::SeqCst);
    }

    /// Registers the socket of a transfer that is starting; the guard
    /// unregisters it.
    pub(crate) fn guard(&self, stream: Arc<TcpStream>) -> InFlight {
        let mut slot = self.lock();
        if self.is_cancelled() {
            // cancelled just before the transfer started: fail it at once
            let _ = stream.shutdown(Shutdown::Both);
        }
        *slot = Some(stream);
        drop(slot);
        InFlight {
            token: self.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<TcpStream>>> {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps a socket registered with a [`CancelToken`] while a transfer runs.
pub(crate) struct InFlight {
    token: CancelToken,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.token.lock() = None;
    }
}
