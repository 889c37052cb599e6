//! What the benchmarks share: an `ioe serve` child process to measure
//! against, and the check that what arrived is what was sent.

use anyhow::{Context, Result, bail};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
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

/// How much of each file [`check_same`] compares at a time.
const CHUNK: usize = 1024 * 1024;

/// Fails unless the two files hold the same bytes.
pub fn check_same(a: &Path, b: &Path) -> Result<()> {
    let open = |p: &Path| File::open(p).with_context(|| format!("cannot open `{}`", p.display()));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut offset = 0u64;
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if ba[..na] != bb[..nb] {
            bail!(
                "`{}` differs from `{}` after byte {offset}",
                b.display(),
                a.display()
            );
        }
        if na == 0 {
            return Ok(());
        }
        offset += na as u64;
    }
}

/// Reads until `buf` is full or the file ends.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
