//! What the benchmarks share: an `ioe serve` child process to measure
//! against.

use anyhow::{Context, Result};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// An `ioe serve` child process on a free port of 127.0.0.1, killed on drop.
pub struct ServeChild {
    child: Child,
    /// The address it listens on.
    pub addr: String,
}

impl ServeChild {
    /// Starts `ioe serve --quiet` on `root`, and reads the address it
    /// prints.
    pub fn start(root: &Path) -> Result<ServeChild> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ioe"))
            .args(["serve", "--quiet", "--listen", "127.0.0.1:0", "--root"])
            .arg(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start `ioe serve`")?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut server = ServeChild {
            child,
            addr: String::new(),
        };
        // the first line is `ioe: serving ROOT on ADDR`; a server that
        // fails to start closes stdout, which ends this read
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        server.addr = line
            .trim_end()
            .rsplit_once(" on ")
            .map(|(_, addr)| addr.to_string())
            .with_context(|| format!("`ioe serve` printed {line:?}, not its address"))?;
        Ok(server)
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
