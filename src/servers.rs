//! Named servers: a small TOML file, `$IOE_CONFIG`, else
//! `$XDG_CONFIG_HOME/ioe/servers.toml` (or `~/.config/ioe/servers.toml`),
//! with one table per server, so that `connect("backup")`, `CONNECT,backup`
//! and `ioe repl --connect backup` work:
//!
//! ```toml
//! [backup]
//! address = "tls://backup.example:7070"
//! fingerprint = "SHA256:…"        # optional: pin this certificate
//! ca_file = "ca.pem"              # optional: trust these authorities
//! token_file = "backup.token"     # optional: the token, mode 0600
//! ```
//!
//! Relative file names are relative to the config file's folder, and `~/`
//! is the home folder. This module reads and checks the file; connecting is
//! the script API's.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The environment variable that names another config file.
pub const ENV: &str = "IOE_CONFIG";

/// Where the config file is: `$IOE_CONFIG`, else `servers.toml` in
/// `$XDG_CONFIG_HOME/ioe` (when absolute) or `~/.config/ioe`; `None` when
/// neither is set.
pub fn path() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(file) = var(ENV) {
        return Some(PathBuf::from(file));
    }
    // a relative XDG_CONFIG_HOME is ignored, as the XDG spec says: it would
    // name a folder under wherever `ioe` runs
    let dir = match var("XDG_CONFIG_HOME").filter(|d| Path::new(d).is_absolute()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(var("HOME")?).join(".config"),
    };
    Some(dir.join("ioe/servers.toml"))
}

/// Whether `text` could be a server's name: ASCII letters, digits, `-`,
/// `_` and `.` only, so an address with a port or a scheme never is.
pub fn could_be_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// One named server, as the file gives it (checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// Its name (the table's).
    pub name: String,
    /// The servers file it is in.
    pub file: PathBuf,
    /// `host:port` to connect to.
    pub addr: String,
    /// Whether the address asks for TLS (`tls://`).
    pub tls: bool,
    /// A pinned fingerprint.
    pub fingerprint: Option<String>,
    /// A PEM file of authorities.
    pub ca_file: Option<PathBuf>,
    /// A file holding the token (checked to be readable by its owner only).
    pub token_file: Option<PathBuf>,
}

/// A table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    address: String,
    fingerprint: Option<String>,
    ca_file: Option<PathBuf>,
    token_file: Option<PathBuf>,
}

/// The server named `name` in the config file at `file`: `None` when the
/// file does not exist or names no such server. A file that cannot be
/// read or parsed, and a bad entry for `name`, are errors naming the file.
pub fn find(file: &Path, name: &str) -> Result<Option<Named>> {
    let text = match fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read the servers file `{}`", file.display()));
        }
    };
    if let Ok(meta) = fs::metadata(file) {
        crate::files::refuse_if_others_write(
            &meta,
            "the servers file",
            file,
            "could send a server's token elsewhere",
        )
        .map_err(anyhow::Error::msg)?;
    }
    let mut entries: BTreeMap<String, Entry> = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "the servers file `{}` is not valid: {}",
            file.display(),
            e.to_string().trim_end()
        )
    })?;
    match entries.remove(name) {
        Some(entry) => check(file, name, entry).map(Some),
        None => Ok(None),
    }
}

/// Checks one entry and resolves its file names.
fn check(file: &Path, name: &str, entry: Entry) -> Result<Named> {
    let bad = |why: String| {
        anyhow::anyhow!(
            "the servers file `{}`, server `{name}`: {why}",
            file.display()
        )
    };
    let bad_address = |e| bad(format!("address `{}`: {e}", entry.address));
    let (text, tls) = crate::addr::split_scheme(&entry.address).map_err(bad_address)?;
    let addr = crate::addr::connect_addr(text).map_err(bad_address)?;
    if let Some(fingerprint) = &entry.fingerprint {
        crate::known_hosts::check_fingerprint(fingerprint).map_err(bad)?;
    }
    if !tls && (entry.fingerprint.is_some() || entry.ca_file.is_some()) {
        return Err(bad(format!(
            "a fingerprint or a CA file needs TLS: write the address as `tls://{addr}`"
        )));
    }
    let folder = file.parent().unwrap_or(Path::new("."));
    let token_file = entry.token_file.map(|f| resolve(folder, &f));
    if let Some(token) = &token_file {
        check_token_file(token).map_err(|e| bad(format!("{e:#}")))?;
    }
    Ok(Named {
        name: name.to_string(),
        file: file.to_path_buf(),
        addr,
        tls,
        fingerprint: entry.fingerprint,
        ca_file: entry.ca_file.map(|f| resolve(folder, &f)),
        token_file,
    })
}

/// `name` relative to `folder`, with `~/` the home folder.
fn resolve(folder: &Path, name: &Path) -> PathBuf {
    if let Ok(rest) = name.strip_prefix("~")
        && let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty())
    {
        return PathBuf::from(home).join(rest);
    }
    folder.join(name)
}

/// A token file must pass [`crate::auth::check_token_file`] and, unless
/// it is a pipe (opening one waits for its writer), be readable.
fn check_token_file(file: &Path) -> Result<()> {
    let meta = fs::metadata(file)
        .with_context(|| format!("cannot use the token file `{}`", file.display()))?;
    crate::auth::check_token_file(file, &meta).map_err(anyhow::Error::msg)?;
    if meta.is_file() {
        fs::File::open(file)
            .with_context(|| format!("cannot read the token file `{}`", file.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const FP: &str = "SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0";

    fn write(dir: &Path, text: &str) -> PathBuf {
        let file = dir.join("servers.toml");
        fs::write(&file, text).unwrap();
        file
    }

    #[test]
    fn a_named_server_is_found_with_its_files_resolved() {
        let dir = tempfile::TempDir::new().unwrap();
        let token = dir.path().join("b.token");
        fs::write(&token, "secret").unwrap();
        fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
        let file = write(
            dir.path(),
            &format!(
                "[backup]\naddress = \"tls://Backup.example\"\nfingerprint = \"{FP}\"\n\
                 ca_file = \"ca.pem\"\ntoken_file = \"b.token\"\n\n[plain]\naddress = \"h:9\"\n"
            ),
        );
        let backup = find(&file, "backup").unwrap().unwrap();
        assert_eq!(
            backup,
            Named {
                name: "backup".into(),
                file: file.clone(),
                addr: "Backup.example:7070".into(),
                tls: true,
                fingerprint: Some(FP.into()),
                ca_file: Some(dir.path().join("ca.pem")),
                token_file: Some(token.clone()),
            }
        );
        assert!(!find(&file, "plain").unwrap().unwrap().tls);
        assert_eq!(find(&file, "other").unwrap(), None);
        assert_eq!(find(&dir.path().join("none.toml"), "backup").unwrap(), None);
        // a token file others may read is refused
        fs::set_permissions(&token, fs::Permissions::from_mode(0o644)).unwrap();
        let open = find(&file, "backup").unwrap_err().to_string();
        assert!(open.contains("is open to others (mode 0644)"), "{open}");
    }

    #[test]
    fn mistakes_are_named() {
        let dir = tempfile::TempDir::new().unwrap();
        for (text, why) in [
            ("[b]\naddres = \"h\"\n", "unknown field `addres`"),
            ("[b]\naddress = \"h:0\"\n", "address `h:0`: port `0`"),
            (
                &format!("[b]\naddress = \"h\"\nfingerprint = \"{FP}\"\n") as &str,
                "needs TLS: write the address as `tls://h:7070`",
            ),
            (
                "[b]\naddress = \"tls://h\"\nfingerprint = \"x\"\n",
                "`x` is not a valid SHA-256 fingerprint",
            ),
            (
                "[b]\naddress = \"tls://h\"\ntoken_file = \"none\"\n",
                "cannot use the token file",
            ),
            ("[b\n", "is not valid"),
        ] {
            let file = write(dir.path(), text);
            let message = format!("{:#}", find(&file, "b").unwrap_err());
            assert!(message.contains(why), "{text}: {message}");
            assert!(message.contains(&file.display().to_string()), "{message}");
        }
    }

    #[test]
    fn a_file_others_may_write_is_refused() {
        let dir = tempfile::TempDir::new().unwrap();
        let file = write(dir.path(), "[b]\naddress = \"tls://h\"\n");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
        let message = find(&file, "b").unwrap_err().to_string();
        assert!(
            message.contains("is writable by other users (mode 0666)")
                && message.contains(&format!("`chmod o-w {}`", file.display())),
            "{message}"
        );
        fs::set_permissions(&file, fs::Permissions::from_mode(0o664)).unwrap();
        assert!(find(&file, "b").unwrap().is_some());
    }

    #[test]
    fn names_have_no_port_or_scheme() {
        assert!(could_be_name("backup"));
        assert!(could_be_name("files.example"));
        assert!(!could_be_name("backup:7070"));
        assert!(!could_be_name("tls://backup"));
        assert!(!could_be_name(""));
    }
}
