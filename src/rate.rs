//! What a transfer must keep up on the server: a minimum average rate over
//! a window ([`RateFloor`]), and a longest time without any progress, both
//! watched by one [`Pace`] that also says how long the next socket read or
//! write may block. Pure arithmetic on the instants it is given, so it is
//! tested without sockets or sleeps.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

/// The shortest socket timeout a [`Pace`] asks for (a zero timeout would
/// mean "block forever" to the socket).
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// A minimum average rate, checked over consecutive windows: every window
/// must carry at least `rate` bytes per second of its length on average.
/// Nothing is judged before a whole window has passed, and a single slow
/// read or write inside a window costs nothing as long as the window's
/// average holds.
#[derive(Debug, Clone)]
pub struct RateFloor {
    rate: u64,
    window: Duration,
    start: Instant,
    bytes: u64,
}

/// A window that ended below the floor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooSlow {
    /// Bytes moved in the window.
    pub bytes: u64,
    /// How long the window lasted (at least the configured window).
    pub elapsed: Duration,
    /// The floor, in bytes per second.
    pub rate: u64,
    /// The configured window.
    pub window: Duration,
}

impl fmt::Display for TooSlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes in {} s, under the server's minimum of {} bytes/s averaged over {} s",
            self.bytes,
            self.elapsed.as_secs(),
            self.rate,
            self.window.as_secs()
        )
    }
}

impl RateFloor {
    /// A floor of `rate` bytes per second over windows of `window`, the
    /// first one starting at `now`; `None` when either is zero (no floor).
    pub fn new(rate: u64, window: Duration, now: Instant) -> Option<RateFloor> {
        (rate > 0 && !window.is_zero()).then_some(RateFloor {
            rate,
            window,
            start: now,
            bytes: 0,
        })
    }

    /// Counts `bytes` moved at `now` (0 just checks the time). Once the
    /// current window has passed, judges it (its bytes against the rate
    /// times its actual length) and starts the next one at `now`.
    pub fn record(&mut self, bytes: u64, now: Instant) -> Result<(), TooSlow> {
        self.bytes = self.bytes.saturating_add(bytes);
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed < self.window {
            return Ok(());
        }
        let needed = u128::from(self.rate) * elapsed.as_nanos() / 1_000_000_000;
        if u128::from(self.bytes) < needed {
            return Err(TooSlow {
                bytes: self.bytes,
                elapsed,
                rate: self.rate,
                window: self.window,
            });
        }
        self.start = now;
        self.bytes = 0;
        Ok(())
    }

    /// How long from `now` until the current window ends.
    pub fn left(&self, now: Instant) -> Duration {
        self.window
            .saturating_sub(now.saturating_duration_since(self.start))
    }
}

/// Why a [`Pace`] gave up on a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slow {
    /// Nothing moved for this long (the idle timeout).
    Stalled(Duration),
    /// A window's average fell below the floor.
    TooSlow(TooSlow),
    /// The transfer's own time limit ([`Pace::until`]) passed.
    Late,
}

impl fmt::Display for Slow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Slow::Stalled(stall) => write!(f, "nothing moved for {} s", stall.as_secs()),
            Slow::TooSlow(too_slow) => write!(f, "too slow: {too_slow}"),
            Slow::Late => write!(f, "its time ran out"),
        }
    }
}

impl std::error::Error for Slow {}

impl Slow {
    /// As an I/O error of kind `TimedOut` that carries this reason (see
    /// [`Slow::of`]).
    pub fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, self)
    }

    /// The reason an I/O error made by [`Slow::into_io`] carries.
    pub fn of(e: &io::Error) -> Option<&Slow> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<Slow>())
    }
}

/// Watches one transfer: bytes must keep moving (at most `stall` without
/// any) and, with a floor, keep its average rate.
#[derive(Debug, Clone)]
pub struct Pace {
    floor: Option<RateFloor>,
    stall: Duration,
    last_progress: Instant,
    deadline: Option<Instant>,
}

impl Pace {
    /// Starts watching at `now`.
    pub fn new(floor: Option<RateFloor>, stall: Duration, now: Instant) -> Pace {
        Pace {
            floor,
            stall,
            last_progress: now,
            deadline: None,
        }
    }

    /// The same, ending the transfer at `deadline` however fast it goes.
    pub fn until(self, deadline: Instant) -> Pace {
        Pace {
            deadline: Some(deadline),
            ..self
        }
    }

    /// Counts `bytes` moved at `now` (0 after a socket timeout).
    pub fn record(&mut self, bytes: u64, now: Instant) -> Result<(), Slow> {
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            return Err(Slow::Late);
        }
        if bytes > 0 {
            self.last_progress = now;
        }
        if let Some(floor) = &mut self.floor {
            floor.record(bytes, now).map_err(Slow::TooSlow)?;
        }
        if now.saturating_duration_since(self.last_progress) >= self.stall {
            return Err(Slow::Stalled(self.stall));
        }
        Ok(())
    }

    /// How long the next read or write may block: until the stall limit
    /// or the end of the current window, whichever comes first.
    pub fn timeout(&self, now: Instant) -> Duration {
        let stall_left = self
            .stall
            .saturating_sub(now.saturating_duration_since(self.last_progress));
        let left = match &self.floor {
            Some(floor) => stall_left.min(floor.left(now)),
            None => stall_left,
        };
        let left = match self.deadline {
            Some(deadline) => left.min(deadline.saturating_duration_since(now)),
            None => left,
        };
        left.max(MIN_TIMEOUT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn floor(rate: u64, window_secs: u64, start: Instant) -> RateFloor {
        RateFloor::new(rate, Duration::from_secs(window_secs), start).unwrap()
    }

    #[test]
    fn a_pace_until_a_deadline_ends_there_however_steady_the_bytes() {
        let t0 = Instant::now();
        let mut pace = Pace::new(None, 60 * S, t0).until(t0 + 5 * S);
        assert_eq!(pace.timeout(t0 + S), 4 * S);
        for second in 1..5 {
            pace.record(1, t0 + second * S).unwrap();
        }
        assert_eq!(pace.record(1, t0 + 5 * S), Err(Slow::Late));
    }

    #[test]
    fn nothing_is_judged_before_a_whole_window() {
        let t0 = Instant::now();
        let mut f = floor(1000, 60, t0);
        // silence for 59.9 s is no verdict yet
        assert_eq!(f.record(0, t0 + Duration::from_millis(59_900)), Ok(()));
        let verdict = f.record(0, t0 + 60 * S).unwrap_err();
        assert_eq!(verdict.bytes, 0);
        assert_eq!(verdict.elapsed, 60 * S);
    }

    #[test]
    fn the_average_over_the_window_counts_not_single_reads() {
        let t0 = Instant::now();
        let mut f = floor(1000, 10, t0);
        // everything at once, then nothing for 9 s: still 1000 B/s on average
        f.record(10_000, t0 + S).unwrap();
        f.record(0, t0 + 9 * S).unwrap();
        f.record(0, t0 + 10 * S).unwrap();
        // the next window starts at the check and is judged on its own
        f.record(9_999, t0 + 15 * S).unwrap();
        let verdict = f.record(0, t0 + 20 * S).unwrap_err();
        assert_eq!(verdict.bytes, 9_999);
        assert_eq!(
            verdict.to_string(),
            "9999 bytes in 10 s, under the server's minimum of 1000 bytes/s averaged over 10 s"
        );
    }

    #[test]
    fn exactly_at_the_rate_passes_window_after_window() {
        let t0 = Instant::now();
        let mut f = floor(1024, 2, t0);
        // 128 bytes every 125 ms is exactly 1024 B/s
        for step in 1..=160u32 {
            let now = t0 + Duration::from_millis(125) * step;
            assert_eq!(f.record(128, now), Ok(()), "step {step}");
        }
    }

    #[test]
    fn a_late_check_judges_the_longer_period_it_covers() {
        let t0 = Instant::now();
        let mut f = floor(100, 10, t0);
        // 1500 bytes over 15 s is 100 B/s: enough
        f.record(1500, t0 + 15 * S).unwrap();
        let mut f = floor(100, 10, t0);
        // 1499 bytes over 15 s is not, though it is more than 10 s' worth
        assert!(f.record(1499, t0 + 15 * S).is_err());
    }

    #[test]
    fn a_zero_rate_or_window_means_no_floor() {
        let t0 = Instant::now();
        assert!(RateFloor::new(0, 60 * S, t0).is_none());
        assert!(RateFloor::new(1024, Duration::ZERO, t0).is_none());
    }

    #[test]
    fn huge_rates_and_counts_do_not_overflow() {
        let t0 = Instant::now();
        let mut f = floor(u64::MAX, 1, t0);
        assert!(f.record(u64::MAX, t0 + 2 * S).is_err());
        let mut f = floor(1, 1, t0);
        f.record(u64::MAX, t0).unwrap();
        f.record(u64::MAX, t0 + 2 * S).unwrap();
    }

    #[test]
    fn a_pace_stalls_after_its_limit_without_progress() {
        let t0 = Instant::now();
        let mut pace = Pace::new(None, 5 * S, t0);
        assert_eq!(pace.timeout(t0), 5 * S);
        pace.record(10, t0 + 3 * S).unwrap();
        assert_eq!(pace.timeout(t0 + 4 * S), 4 * S);
        pace.record(0, t0 + 7 * S).unwrap();
        assert_eq!(pace.record(0, t0 + 8 * S), Err(Slow::Stalled(5 * S)));
        // a timeout already due is still a positive one for the socket
        assert_eq!(pace.timeout(t0 + 9 * S), MIN_TIMEOUT);
    }

    #[test]
    fn a_pace_wakes_up_at_the_end_of_each_window() {
        let t0 = Instant::now();
        let floor = RateFloor::new(100, 10 * S, t0);
        let mut pace = Pace::new(floor, 300 * S, t0);
        assert_eq!(pace.timeout(t0 + 4 * S), 6 * S);
        pace.record(2000, t0 + 10 * S).unwrap();
        assert_eq!(pace.timeout(t0 + 10 * S), 10 * S);
        let slow = pace.record(999, t0 + 20 * S).unwrap_err();
        assert!(matches!(&slow, Slow::TooSlow(t) if t.bytes == 999));
        // carried through an io::Error and back
        let e = slow.clone().into_io();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(Slow::of(&e), Some(&slow));
        assert_eq!(Slow::of(&io::Error::other("x")), None);
    }
}
