//! TLS identities and trust: the server's certificate (PEM files given, or
//! a self-signed one made once and kept in the user's state folder), the
//! OpenSSH-style fingerprint of a certificate, and the client's trust: a
//! pinned fingerprint, else a known-hosts line ([`crate::known_hosts`]) or
//! a certificate authority (the system's or a CA file) vouching for the
//! host name, and the message that says why a server was refused. The
//! bytes of a TLS connection are [`crate::conn`]'s.

use crate::known_hosts::Known;
use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// File name of the self-signed certificate in the state folder.
pub const CERT_FILE: &str = "server-cert.pem";
/// File name of its private key (mode 0600).
pub const KEY_FILE: &str = "server-key.pem";

/// The fingerprint of a DER certificate as OpenSSH shows keys: `SHA256:`
/// and the unpadded base64 of its SHA-256 digest.
pub fn fingerprint(der: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(der)))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The user's state folder for `ioe`: `$XDG_STATE_HOME/ioe`, or
/// `~/.local/state/ioe`. A relative `XDG_STATE_HOME` is ignored, as the
/// XDG spec says: it would name a folder under wherever `ioe` runs.
pub fn state_dir() -> Result<PathBuf> {
    if let Some(dir) =
        std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty() && Path::new(d).is_absolute())
    {
        return Ok(PathBuf::from(dir).join("ioe"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/state/ioe")),
        None => bail!(
            "cannot find a state folder for the self-signed certificate: neither \
             XDG_STATE_HOME nor HOME is set; set one, or give --tls-cert and --tls-key"
        ),
    }
}

/// A server's TLS configuration and the fingerprint of its certificate.
pub struct ServerIdentity {
    /// What rustls serves with.
    pub config: Arc<ServerConfig>,
    /// The certificate's fingerprint ([`fingerprint`]).
    pub fingerprint: String,
    /// Where the certificate came from, for the start-up line.
    pub source: PathBuf,
}

/// The server's identity: from `cert` and `key` (PEM files) when given,
/// else the self-signed certificate in [`state_dir`], made on first use.
/// `root` is the served folder, which must not hold a made certificate.
pub fn server_identity(files: Option<(&Path, &Path)>, root: &Path) -> Result<ServerIdentity> {
    let (cert_path, key_path) = match files {
        Some((cert, key)) => (cert.to_path_buf(), key.to_path_buf()),
        None => self_signed(root)?,
    };
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read the certificate `{}`", cert_path.display()))?;
    let Some(first) = certs.first() else {
        bail!(
            "the certificate file `{}` holds no PEM certificate",
            cert_path.display()
        );
    };
    let fingerprint = fingerprint(first);
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("cannot read the private key `{}`", key_path.display()))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS set-up")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "the key `{}` does not fit the certificate `{}`",
                key_path.display(),
                cert_path.display()
            )
        })?;
    Ok(ServerIdentity {
        config: Arc::new(config),
        fingerprint,
        source: cert_path,
    })
}

/// Refuses a private key file (`--tls-key`) inside the served folder
/// `root`, where clients could download it.
pub fn check_key_outside(key: &Path, root: &Path) -> Result<()> {
    if let Some((key, root)) = crate::root::lies_inside(key, root) {
        bail!(
            "the private key `{}` is inside the served folder `{}`, where clients \
             could download it and pose as this server; move it elsewhere (such \
             as beside the certificate, outside the served folder)",
            key.display(),
            root.display()
        );
    }
    Ok(())
}

/// The paths of the self-signed certificate and key in the state folder,
/// made now if they are not there yet.
fn self_signed(root: &Path) -> Result<(PathBuf, PathBuf)> {
    let dir = state_dir()?;
    // judged before anything is made: a folder not made yet counts too
    if let Some((dir, root)) = crate::root::lies_inside(&dir, root) {
        bail!(
            "the state folder `{}` is inside the served folder `{}`, where clients could \
             read the private key; set XDG_STATE_HOME elsewhere, or give --tls-cert and --tls-key",
            dir.display(),
            root.display()
        );
    }
    let cert = dir.join(CERT_FILE);
    let key = dir.join(KEY_FILE);
    if cert.exists() && key.exists() {
        check_private(&key)?;
        return Ok((cert, key));
    }
    fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the state folder `{}`", dir.display()))?;
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .context("cannot make a self-signed certificate")?;
    write_new(&key, made.key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_new(&cert, made.cert.pem().as_bytes(), 0o644)?;
    Ok((cert, key))
}

/// Refuses a made private key that its group or others may read or write
/// (as ssh refuses such a key): it is kept, not replaced, since clients
/// trust its certificate.
fn check_private(key: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(key)
        .with_context(|| format!("cannot use the private key `{}`", key.display()))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "the private key `{}` is open to others (mode {mode:04o}), who could pose as \
             this server; make it private with `chmod 600 {}`",
            key.display(),
            key.display()
        );
    }
    Ok(())
}

/// Writes `bytes` to a new file `path` with `mode` (replacing a stray one).
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create `{}`", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write `{}`", path.display()))
}

/// Whom a client trusts for one server, in this order: the `pinned`
/// fingerprint alone when one is given; else a line of the known-hosts file
/// with the certificate's fingerprint, or a certificate that chains to the
/// `authorities` and is for the host name; else nothing.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// A fingerprint given for this connection: exactly that certificate.
    pub pinned: Option<String>,
    /// The known-hosts lines for the server.
    pub known: Vec<Known>,
    /// The known-hosts file they come from, for messages (`None` when
    /// there is none: no state folder).
    pub known_file: Option<PathBuf>,
    /// The certificate authorities.
    pub authorities: Authorities,
}

/// The certificate authorities a client trusts.
#[derive(Debug, Clone, Default)]
pub enum Authorities {
    /// The system's, loaded once per process when first needed (a server
    /// accepted through the known-hosts file never loads them).
    #[default]
    System,
    /// Those of a CA file.
    File(Arc<WebPkiServerVerifier>),
}

impl Trust {
    /// The trust for `addr` (`host:port`): `pinned` alone when given; else
    /// the known-hosts lines for it and the authorities of `ca_file` (PEM)
    /// or else the system's (`SSL_CERT_FILE` and `SSL_CERT_DIR` replace
    /// them). A known-hosts file that cannot be read or holds a bad line,
    /// and a CA file without a usable certificate, are errors.
    pub fn for_server(addr: &str, pinned: Option<&str>, ca_file: Option<&Path>) -> Result<Trust> {
        if let Some(pinned) = pinned {
            return Ok(Trust {
                pinned: Some(pinned.to_string()),
                ..Trust::default()
            });
        }
        let known_file = crate::known_hosts::path().ok();
        let known = match &known_file {
            Some(file) => crate::known_hosts::lookup(file, addr)?,
            None => Vec::new(),
        };
        let authorities = match ca_file {
            Some(file) => Authorities::File(ca_file_verifier(file)?),
            None => Authorities::System,
        };
        Ok(Trust {
            pinned: None,
            known,
            known_file,
            authorities,
        })
    }
}

/// The system's trust roots as a verifier, loaded once per process; the
/// error says why there are none.
fn system_verifier() -> std::result::Result<Arc<WebPkiServerVerifier>, String> {
    static SYSTEM: OnceLock<std::result::Result<Arc<WebPkiServerVerifier>, String>> =
        OnceLock::new();
    SYSTEM
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(loaded.certs);
            if roots.is_empty() {
                let why = match loaded.errors.first() {
                    Some(e) => e.to_string(),
                    None => "none found".to_string(),
                };
                return Err(format!("no system certificate authorities ({why})"));
            }
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| format!("the system certificate authorities are unusable: {e}"))
        })
        .clone()
}

/// A verifier trusting the certificates of the PEM file `file`.
fn ca_file_verifier(file: &Path) -> Result<Arc<WebPkiServerVerifier>> {
    if let Ok(meta) = fs::metadata(file) {
        crate::files::refuse_if_others_write(
            &meta,
            "the CA file",
            file,
            "could add an authority and pose as any server",
        )
        .map_err(anyhow::Error::msg)?;
    }
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read the CA file `{}`", file.display()))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        bail!(
            "the CA file `{}` holds no usable PEM certificate",
            file.display()
        );
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .with_context(|| format!("the CA file `{}` cannot be used", file.display()))
}

/// Why a client refused a server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No authority vouches for it and the known-hosts file has no line
    /// for the server: first contact.
    Unknown {
        /// The certificate's fingerprint.
        shown: String,
        /// Why the authorities did not vouch for it, when that is worth
        /// telling (an expired certificate, no system authorities).
        note: Option<String>,
    },
    /// The known-hosts file trusts another certificate for the server.
    Changed {
        /// The certificate's fingerprint.
        shown: String,
        /// The line that trusts another one.
        known: Known,
    },
    /// The connection pinned another fingerprint.
    NotPinned {
        /// The certificate's fingerprint.
        shown: String,
        /// The pinned one.
        pinned: String,
    },
    /// An authority vouches for the certificate, but for other names.
    OtherName {
        /// The certificate's fingerprint.
        shown: String,
        /// The names it is for.
        names: Vec<String>,
    },
}

impl Refusal {
    /// The fingerprint the server showed.
    pub fn shown(&self) -> &str {
        match self {
            Refusal::Unknown { shown, .. }
            | Refusal::Changed { shown, .. }
            | Refusal::NotPinned { shown, .. }
            | Refusal::OtherName { shown, .. } => shown,
        }
    }

    /// What a user reads about the refusal of server `addr` (`host:port`),
    /// with the one command that goes on; `known_file` is the known-hosts
    /// file.
    pub fn message(&self, addr: &str, known_file: Option<&Path>) -> String {
        let trust = format!(
            "ioe trust {} {}",
            shell_word(&format!("tls://{addr}")),
            self.shown()
        );
        let forget = format!("ioe trust --forget {}", shell_word(addr));
        let file = known_file.map_or_else(
            || "file (none: no state folder)".to_string(),
            |f| format!("file `{}`", f.display()),
        );
        match self {
            Refusal::Unknown { shown, note } => {
                let note = note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
                format!(
                    "the server's certificate is not trusted: no certificate authority \
                     vouches for it{note} and the known-hosts {file} has no line for {addr}. \
                     Its fingerprint is {shown}; if that is the fingerprint `ioe serve --tls` \
                     printed on the server, trust it with: {trust}"
                )
            }
            Refusal::Changed { shown, known } => format!(
                "the server's certificate has changed: the known-hosts file `{}` line {} \
                 trusts {} for {addr}, but the server showed {shown}. Someone may be \
                 posing as the server; if its certificate was changed on purpose, clear \
                 the old one with `{forget}`, then: {trust}",
                known.file.display(),
                known.line,
                known.fingerprint
            ),
            Refusal::NotPinned { shown, pinned } => format!(
                "the server's certificate does not match the fingerprint pinned for \
                 {addr}: expected {pinned}, the server showed {shown}. Someone may be \
                 posing as the server; if its certificate was changed on purpose, pin \
                 the new one: `fingerprint: \"{shown}\"` in connect's options, or \
                 `fingerprint = \"{shown}\"` in the servers file"
            ),
            Refusal::OtherName { shown, names } => {
                let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
                let port = addr.rsplit_once(':').map_or("", |(_, port)| port);
                let example = names
                    .iter()
                    .find(|n| !n.starts_with('*'))
                    .map(|n| format!(" (such as tls://{}:{port})", join_name(n)))
                    .unwrap_or_default();
                format!(
                    "the server's certificate is signed by a trusted authority, but the \
                     name `{host}` does not match it: it is for {}. Connect by a name it \
                     is for{example}, or, if this is the server you mean, trust its \
                     fingerprint {shown} with: {trust}",
                    if names.is_empty() {
                        "other names".to_string()
                    } else {
                        names.join(", ")
                    }
                )
            }
        }
    }
}

/// `text` as one word of a shell command: quoted when it holds anything
/// but letters, digits and `.-_:/@+=` (an IPv6 address's brackets are a
/// pattern to the shell; zsh refuses one that matches no file).
pub fn shell_word(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || ".-_:/@+=".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// A certificate's name as a host in an address (IPv6 in brackets).
fn join_name(name: &str) -> String {
    if name.contains(':') {
        format!("[{name}]")
    } else {
        name.to_string()
    }
}

/// What a client's verifier refused, if it refused the certificate.
pub type Seen = Arc<Mutex<Option<Refusal>>>;

/// A client configuration that accepts exactly the certificate whose
/// fingerprint is `pinned` (none: refuses every one), recording a
/// refusal in the returned [`Seen`].
pub fn client_config(pinned: Option<String>) -> (Arc<ClientConfig>, Seen) {
    trusting_config(Trust {
        pinned,
        ..Trust::default()
    })
}

/// A client configuration that accepts what `trust` trusts, recording a
/// refusal in the returned [`Seen`].
pub fn trusting_config(trust: Trust) -> (Arc<ClientConfig>, Seen) {
    let seen = Seen::default();
    let provider = provider();
    let verifier = Verifier {
        trust,
        seen: Arc::clone(&seen),
        algorithms: provider.signature_verification_algorithms,
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    (Arc::new(config), seen)
}

/// The server name a TLS client sends for `host` (a name or an address).
pub fn server_name(host: &str) -> Result<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|_| anyhow::anyhow!("`{host}` is not a host name or address"))
}

/// Applies a [`Trust`] to the server's certificate; the handshake's
/// signatures are still checked against it.
#[derive(Debug)]
struct Verifier {
    trust: Trust,
    seen: Seen,
    algorithms: WebPkiSupportedAlgorithms,
}

impl Verifier {
    fn judge(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<(), Refusal> {
        let shown = fingerprint(end_entity);
        let trust = &self.trust;
        if let Some(pinned) = &trust.pinned {
            if *pinned == shown {
                return Ok(());
            }
            return Err(Refusal::NotPinned {
                shown,
                pinned: pinned.clone(),
            });
        }
        if trust.known.iter().any(|k| k.fingerprint == shown) {
            return Ok(());
        }
        let (authority, note) = match &trust.authorities {
            Authorities::File(verifier) => (Some(Arc::clone(verifier)), None),
            Authorities::System => match system_verifier() {
                Ok(verifier) => (Some(verifier), None),
                Err(note) => (None, Some(note)),
            },
        };
        let failure = match authority.map(|authority| {
            authority.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        }) {
            Some(Ok(_)) => return Ok(()),
            Some(Err(e)) => Some(e),
            None => None,
        };
        if let Some(known) = trust.known.first() {
            return Err(Refusal::Changed {
                shown,
                known: known.clone(),
            });
        }
        match failure {
            Some(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                presented,
                ..
            })) => Err(Refusal::OtherName {
                shown,
                names: presented.iter().map(|n| plain_name(n)).collect(),
            }),
            Some(rustls::Error::InvalidCertificate(CertificateError::NotValidForName)) => {
                Err(Refusal::OtherName {
                    shown,
                    names: Vec::new(),
                })
            }
            Some(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) | None => {
                Err(Refusal::Unknown { shown, note })
            }
            Some(other) => Err(Refusal::Unknown {
                shown,
                note: Some(format!("an authority's check said: {other}")),
            }),
        }
    }
}

/// `localhost` of webpki's `DnsName("localhost")`, `127.0.0.1` of
/// `IpAddress(127.0.0.1)`.
fn plain_name(presented: &str) -> String {
    let inner = ["DnsName(", "IpAddress("]
        .iter()
        .find_map(|prefix| presented.strip_prefix(prefix))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or(presented);
    inner.trim_matches('"').to_string()
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.judge(end_entity, intermediates, server_name, ocsp_response, now) {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            Err(refusal) => {
                *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(refusal);
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_openssh_style() {
        // SHA-256 of "abc", base64 without padding
        assert_eq!(
            fingerprint(b"abc"),
            "SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0"
        );
    }

    #[test]
    fn webpki_names_are_shown_plain() {
        assert_eq!(plain_name("DnsName(\"localhost\")"), "localhost");
        assert_eq!(plain_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(plain_name("DirectoryName"), "DirectoryName");
        assert_eq!(join_name("::1"), "[::1]");
    }

    #[test]
    fn commands_in_messages_can_be_pasted_into_a_shell() {
        const FP: &str = "SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0";
        let unknown = Refusal::Unknown {
            shown: FP.into(),
            note: None,
        };
        assert!(
            unknown
                .message("[::1]:7070", None)
                .ends_with(&format!("trust it with: ioe trust 'tls://[::1]:7070' {FP}")),
            "{}",
            unknown.message("[::1]:7070", None)
        );
        let changed = Refusal::Changed {
            shown: FP.into(),
            known: Known {
                addr: "[::1]:7070".into(),
                fingerprint: FP.into(),
                file: PathBuf::from("kh"),
                line: 1,
            },
        };
        assert!(
            changed
                .message("[::1]:7070", None)
                .contains("`ioe trust --forget '[::1]:7070'`")
        );
        assert_eq!(
            shell_word("tls://host.example:7070"),
            "tls://host.example:7070"
        );
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
