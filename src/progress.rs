//! Progress bars on stderr for transfers that last more than about a
//! second. Short transfers (and runs where progress is off) never create a
//! bar, so the per-file cost of many small files is one `Instant::now()`.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
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
        let stderr = Box::new(console::Term::stderr());
        let bar =
            ProgressBar::with_draw_target(Some(self.total), ProgressDrawTarget::term_like(stderr));
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .expect("valid progress template")
            .progress_chars("=> "),
        );
        bar.set_message(self.label.clone());
        bar.set_position(self.done);
        bar
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
