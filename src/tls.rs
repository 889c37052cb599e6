//! TLS identities and trust: the server's certificate (PEM files given, or
//! a self-signed one made once and kept in the user's state folder), the
//! OpenSSH-style fingerprint of a certificate, and the client's trust in
//! this first slice: a pinned fingerprint, and nothing else. The bytes of a
//! TLS connection are [`crate::conn`]'s.

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme,
};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

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
/// `~/.local/state/ioe`.
pub fn state_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
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

/// The paths of the self-signed certificate and key in the state folder,
/// made now if they are not there yet.
fn self_signed(root: &Path) -> Result<(PathBuf, PathBuf)> {
    let dir = state_dir()?;
    if let (Ok(dir), Ok(root)) = (dir.canonicalize(), root.canonicalize())
        && dir.starts_with(&root)
    {
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

/// What a client saw of the server's certificate during a handshake.
pub type Seen = Arc<Mutex<Option<String>>>;

/// A client configuration that accepts exactly the certificate whose
/// fingerprint is `pinned` (none: refuses every one), and records the
/// fingerprint it was shown in the returned [`Seen`].
pub fn client_config(pinned: Option<String>) -> (Arc<ClientConfig>, Seen) {
    let seen = Seen::default();
    let provider = provider();
    let verifier = Pinned {
        pinned,
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

/// Accepts the one certificate whose fingerprint is pinned; the
/// handshake's signatures are still checked against it.
#[derive(Debug)]
struct Pinned {
    pinned: Option<String>,
    seen: Seen,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let shown = fingerprint(end_entity);
        let matches = self.pinned.as_deref() == Some(shown.as_str());
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(shown);
        if matches {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
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
}
