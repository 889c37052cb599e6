//! A TCP relay on 127.0.0.1 between a client and a real server, for tests
//! that need a transfer stopped at an exact point: it counts the bytes it
//! forwards from the server to the client, can hold them back once a
//! given count went through, until released, and can cut every n-th
//! connection short, as a flaky network does.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a relay lives at most, whatever the test does.
const LIFETIME: Duration = Duration::from_secs(120);

/// What the relay's threads share.
#[derive(Default)]
struct Shared {
    /// Bytes forwarded from the server to clients, all connections.
    forwarded: AtomicU64,
    /// Forward at most this many bytes (in total) until released.
    hold_at: Mutex<Option<u64>>,
    released: Condvar,
    stop: AtomicBool,
    /// Cut every n-th connection (1-based) after this many bytes from the
    /// server: `(n, bytes)`.
    cut: Mutex<Option<(u64, u64)>>,
    /// Connections accepted so far.
    accepted: AtomicU64,
    /// Connections cut so far.
    cuts: AtomicU64,
}

/// A relay listening on 127.0.0.1; stops on drop.
pub struct Relay {
    /// Where clients connect.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Relay {
    /// Relays every connection to `target`.
    pub fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        if super::tls_run() {
            // the server behind it speaks TLS: its children trust the relay too
            super::trust(addr);
        }
        let shared = Arc::new(Shared::default());
        let accepting = Arc::clone(&shared);
        thread::spawn(move || {
            let start = Instant::now();
            while !accepting.stop.load(Ordering::SeqCst) && start.elapsed() < LIFETIME {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let number = accepting.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                        let cut_after = match *accepting.cut.lock().unwrap() {
                            Some((every, bytes)) if number % every == 0 => Some(bytes),
                            _ => None,
                        };
                        if let Ok(server) = TcpStream::connect(target) {
                            pipe(client, server, &accepting, cut_after);
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Relay { addr, shared }
    }

    /// From now on, forward server bytes only until `total` went through
    /// (counted since the relay started), then hold them until
    /// [`release`](Self::release).
    pub fn hold_at(&self, total: u64) {
        *self.shared.hold_at.lock().unwrap() = Some(total);
    }

    /// Waits (at most 30 s) until the relay holds bytes back at its mark.
    pub fn wait_held(&self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            let mark = *self.shared.hold_at.lock().unwrap();
            if mark.is_some_and(|mark| self.forwarded() >= mark) {
                return;
            }
            thread::sleep(Duration::from_millis(5));
        }
        panic!("the relay never reached its mark");
    }

    /// Forwards freely again.
    pub fn release(&self) {
        *self.shared.hold_at.lock().unwrap() = None;
        self.shared.released.notify_all();
    }

    /// From now on, cuts every `every`-th connection once `after` bytes of
    /// the server's went through it (both directions closed at once).
    pub fn cut_every(&self, every: u64, after: u64) {
        *self.shared.cut.lock().unwrap() = Some((every, after));
    }

    /// Connections cut so far.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from the server to clients so far.
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.release();
    }
}

/// Copies both ways between `client` and `server` on two threads; each
/// direction's end closes the other side's sending half.
fn pipe(client: TcpStream, server: TcpStream, shared: &Arc<Shared>, cut_after: Option<u64>) {
    let (client_in, server_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    thread::spawn(move || {
        copy(client_in, &server_out, None, None);
    });
    let shared = Arc::clone(shared);
    thread::spawn(move || copy(server, &client, Some(&shared), cut_after));
}

/// Copies until EOF or an error; with `shared`, counts the bytes and stops
/// at the hold mark until released; with `cut_after`, closes both
/// connections once that many bytes went through.
fn copy(mut from: TcpStream, mut to: &TcpStream, shared: Option<&Shared>, cut_after: Option<u64>) {
    let mut buf = [0; 16 * 1024];
    let start = Instant::now();
    let mut through = 0u64;
    'copying: while start.elapsed() < LIFETIME {
        if let Some(limit) = cut_after
            && through >= limit
        {
            if let Some(shared) = shared {
                shared.cuts.fetch_add(1, Ordering::SeqCst);
            }
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
            return;
        }
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut piece = &buf[..n];
        while !piece.is_empty() {
            let allowed = match shared {
                Some(shared) => allowed(shared, piece.len()),
                None => piece.len(),
            };
            if to.write_all(&piece[..allowed]).is_err() {
                break 'copying;
            }
            if let Some(shared) = shared {
                shared.forwarded.fetch_add(allowed as u64, Ordering::SeqCst);
            }
            through += allowed as u64;
            piece = &piece[allowed..];
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// How many of `want` bytes may go now; waits while none may.
fn allowed(shared: &Shared, want: usize) -> usize {
    let mut mark = shared.hold_at.lock().unwrap();
    loop {
        let forwarded = shared.forwarded.load(Ordering::SeqCst);
        match *mark {
            Some(limit) if forwarded >= limit => {
                if shared.stop.load(Ordering::SeqCst) {
                    return want;
                }
                mark = shared
                    .released
                    .wait_timeout(mark, Duration::from_millis(50))
                    .unwrap()
                    .0;
            }
            Some(limit) => return want.min((limit - forwarded) as usize),
            None => return want,
        }
    }
}
