//! Progress bars on stderr for transfers that last more than about a
//! second. Short transfers (and runs where progress is off) never create a
//! bar, so the per-file cost of many small files is one `Instant::now()`.
//! A whole tree (`push`, `pull`) gets one overall bar, [`TreeMeter`], drawn
//! from the sync's shared counters by a thread of its own.

use crate::sync::Counters;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a transfer runs before its bar appears.
const SHOW_AFTER: Duration = Duration::from_secs(1);

/// Whether transfers show a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// Only when stderr is a terminal.
    #[default]
    Auto,
    /// Always (`--progress`).
    Always,
    /// Never (`--no-progress`).
    Never,
}

impl ProgressMode {
    /// Resolves `Auto` against the terminal: whether bars are drawn at all.
    pub fn enabled(self) -> bool {
        match self {
            ProgressMode::Auto => std::io::stderr().is_terminal(),
            ProgressMode::Always => true,
            ProgressMode::Never => false,
        }
    }
}

/// Tracks one transfer and draws its bar once it has run long enough.
pub struct Meter {
    label: String,
    total: u64,
    done: u64,
    started: Instant,
    bar: Option<ProgressBar>,
    enabled: bool,
}

impl Meter {
    /// Starts tracking a transfer of `total` bytes; `enabled` comes from
    /// [`ProgressMode::enabled`].
    pub fn start(enabled: bool, label: &str, total: u64) -> Meter {
        Meter {
            label: if enabled {
                label.to_string()
            } else {
                String::new()
            },
            total,
            done: 0,
            started: Instant::now(),
            bar: None,
            enabled,
        }
    }

    /// Records `n` more bytes moved.
    pub fn advance(&mut self, n: u64) {
        self.done += n;
        if !self.enabled {
            return;
        }
        if let Some(bar) = &self.bar {
            bar.set_position(self.done);
        } else if self.started.elapsed() >= SHOW_AFTER {
            self.bar = Some(self.make_bar());
        }
    }

    fn make_bar(&self) -> ProgressBar {
        // `ProgressDrawTarget::stderr()` hides itself when stderr is not a
        // terminal, which would make `--progress` a no-op on a pipe or log;
        // whether to draw at all was decided by `ProgressMode::enabled`
        let stderr = Box::new(Unpadded(console::Term::stderr()));
        bar_from(
            self.total,
            self.done,
            &self.label,
            ProgressDrawTarget::term_like(stderr),
        )
    }
}

/// A terminal for the bar that leaves out the spaces indicatif pads each
/// line with up to the right edge. Padded, the cursor waits in the last
/// column, so the `^C` a terminal echoes on Ctrl-C wraps to a new line and
/// the bar's final "clear the current line" erases that line instead of the
/// bar, which then stays on screen above the report. Nothing is printed
/// while a bar is shown, so the padding has no other use here (each
/// redraw clears the whole line first).
#[derive(Debug)]
struct Unpadded(console::Term);

impl indicatif::TermLike for Unpadded {
    fn width(&self) -> u16 {
        self.0.size().1
    }

    fn height(&self) -> u16 {
        self.0.size().0
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_up(n)
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_down(n)
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_right(n)
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_left(n)
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.0.write_line(s)
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        if !s.is_empty() && s.bytes().all(|b| b == b' ') {
            return Ok(());
        }
        self.0.write_str(s)
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.0.clear_line()
    }

    fn flush(&self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// A bar for `total` bytes that starts at `done`. Its rate (and so its
/// ETA) counts only the bytes moved from now on: the bytes before the bar
/// appeared would otherwise look as if they had come all at once, showing
/// GiB/s and `ETA 0s` for the first seconds.
fn bar_from(total: u64, done: u64, label: &str, target: ProgressDrawTarget) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden())
        .with_position(done);
    // the rate estimate takes `done` as its starting point…
    bar.tick();
    // …and forgets the jump from 0 to it
    bar.reset_eta();
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .expect("valid progress template")
        .progress_chars("=> "),
    );
    bar.set_message(label.to_string());
    bar.set_draw_target(target);
    bar
}

/// How often the tree's bar is redrawn.
const TREE_TICK: Duration = Duration::from_millis(200);
/// Most names of files in flight the tree's bar shows.
const SHOWN_IN_FLIGHT: usize = 3;
/// Most characters of each such name (the end of a longer one is shown).
const SHOWN_NAME: usize = 24;

/// One overall bar for a sync: files and bytes done of the total, rate,
/// ETA and the files in flight. It appears once the copies have run for
/// about a second, and goes when dropped.
pub struct TreeMeter {
    stop: Option<Sender<()>>,
    drawer: Option<JoinHandle<()>>,
}

impl TreeMeter {
    /// Starts drawing `counters` under `label` when `enabled` (from
    /// [`ProgressMode::enabled`]); otherwise does nothing at all.
    pub fn start(enabled: bool, label: &str, counters: Arc<Counters>) -> TreeMeter {
        if !enabled {
            return TreeMeter {
                stop: None,
                drawer: None,
            };
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let label = label.to_string();
        let drawer = std::thread::spawn(move || {
            let mut bar: Option<ProgressBar> = None;
            let mut copying_since: Option<Instant> = None;
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(TREE_TICK) {
                let now = counters.snapshot();
                if now.files_total == 0 {
                    continue;
                }
                let since = *copying_since.get_or_insert_with(Instant::now);
                if bar.is_none() && since.elapsed() >= SHOW_AFTER {
                    let stderr = Box::new(Unpadded(console::Term::stderr()));
                    let target = ProgressDrawTarget::term_like(stderr);
                    bar = Some(bar_from(now.bytes_total, now.bytes_done, &label, target));
                }
                if let Some(bar) = &bar {
                    bar.set_position(now.bytes_done);
                    bar.set_message(tree_message(&label, &now));
                }
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
        });
        TreeMeter {
            stop: Some(stop),
            drawer: Some(drawer),
        }
    }
}

/// `push 12/40 files (a.txt, b.txt +2)`: the bar's text before the bytes.
fn tree_message(label: &str, now: &crate::sync::Snapshot) -> String {
    let mut text = format!("{label} {}/{} files", now.files_done, now.files_total);
    if !now.in_flight.is_empty() {
        let shown: Vec<String> = now
            .in_flight
            .iter()
            .take(SHOWN_IN_FLIGHT)
            .map(|name| short(name))
            .collect();
        text.push_str(&format!(" ({}", shown.join(", ")));
        if now.in_flight.len() > SHOWN_IN_FLIGHT {
            text.push_str(&format!(" +{}", now.in_flight.len() - SHOWN_IN_FLIGHT));
        }
        text.push(')');
    }
    text
}

/// `name`, or `…` and its last [`SHOWN_NAME`] characters.
fn short(name: &str) -> String {
    let count = name.chars().count();
    if count <= SHOWN_NAME {
        return name.to_string();
    }
    let tail: String = name.chars().skip(count - SHOWN_NAME).collect();
    format!("…{tail}")
}

impl Drop for TreeMeter {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(drawer) = self.drawer.take() {
            let _ = drawer.join();
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_bar_names_a_few_files_in_flight() {
        let mut now = crate::sync::Snapshot {
            files_total: 40,
            files_done: 12,
            ..Default::default()
        };
        assert_eq!(tree_message("push", &now), "push 12/40 files");
        now.in_flight = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        assert_eq!(tree_message("push", &now), "push 12/40 files (a, b, c +2)");
        now.in_flight = vec!["photos/2026/holiday/ünïcödé-0001.jpg".to_string()];
        assert_eq!(
            tree_message("push", &now),
            "push 12/40 files (…holiday/ünïcödé-0001.jpg)"
        );
    }

    #[test]
    fn the_rate_counts_only_bytes_moved_after_the_bar_appeared() {
        const MIB: u64 = 1024 * 1024;
        // 4 MiB had gone through when the bar appeared; then 64 KiB in
        // (at least) 100 ms: well under 1 MiB/s
        let bar = bar_from(10 * MIB, 4 * MIB, "x", ProgressDrawTarget::hidden());
        std::thread::sleep(Duration::from_millis(100));
        bar.set_position(4 * MIB + 64 * 1024);
        bar.tick();
        let rate = bar.per_sec();
        assert!(rate < 1.0 * MIB as f64, "{rate} bytes/s");
        assert!(rate > 0.0, "{rate} bytes/s");
    }
}
