//! Server addresses as people type them — `host`, `host:port`,
//! `[v6]:port` or a bare IPv6 literal — turned into `host:port`, with port
//! [`DEFAULT_PORT`] when none is given. One rule for `connect()`,
//! `CONNECT`, `ioe repl --connect` and `ioe serve --listen`.

use std::fmt;

/// The port used when an address gives none: `ioe serve`'s default.
pub const DEFAULT_PORT: u16 = 7070;

/// Why an address cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrError {
    /// Nothing before the port (`:7070`, an empty text).
    NoHost,
    /// A number alone (`7070`): a port with no host.
    PortAlone(String),
    /// The port text is not a port number from `lowest` to 65535.
    BadPort {
        /// The port as given.
        port: String,
        /// 1 to connect, 0 (any free port) to listen.
        lowest: u16,
    },
    /// A `scheme://` other than [`TLS_SCHEME`] (`tsl://`, `tcp://`, …).
    UnknownScheme(String),
    /// A character no host has (`/`, a space, …), in the text as given.
    BadChar {
        /// The address as given.
        text: String,
        /// The first character a host cannot hold.
        bad: char,
    },
}

/// The scheme that asks for TLS in an address: `tls://host:port`
/// (matched without regard to case, as URL schemes are).
pub const TLS_SCHEME: &str = "tls://";

/// The forms an address takes, for messages.
const FORMS: &str = "write tls://host:port (TLS) or host:port (plain TCP)";

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrError::NoHost => write!(
                f,
                "no host given; write host or host:port, such as 127.0.0.1:{DEFAULT_PORT}"
            ),
            AddrError::PortAlone(port) => write!(
                f,
                "`{port}` is a port alone; give the host too, such as 127.0.0.1:{port}"
            ),
            AddrError::BadPort { port, lowest } => {
                write!(f, "port `{port}` is not a number from {lowest} to 65535")
            }
            AddrError::UnknownScheme(scheme) => {
                write!(f, "unknown scheme `{scheme}`; {FORMS}")
            }
            AddrError::BadChar { text, bad } => write!(
                f,
                "`{text}` is not an address: a host cannot hold {bad:?}; {FORMS}"
            ),
        }
    }
}

impl std::error::Error for AddrError {}

/// An address as typed, split into the rest and whether it asks for TLS
/// (a [`TLS_SCHEME`] prefix, in any case: `TLS://` too). Any other
/// `scheme://` is [`AddrError::UnknownScheme`], never taken for a host.
pub fn split_scheme(text: &str) -> Result<(&str, bool), AddrError> {
    match text.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("tls") => Ok((rest, true)),
        Some((scheme, _)) => Err(AddrError::UnknownScheme(format!("{scheme}://"))),
        None => Ok((text, false)),
    }
}

/// `tls://` (in any case) before `host` and `port` given apart, as
/// `connect("tls://host", port)` and `CONNECT,tls://host,port` write them:
/// `host:port` and whether TLS was asked for.
pub fn split_host_port(host: &str, port: &str) -> Result<(String, bool), AddrError> {
    let (host, tls) = split_scheme(host)?;
    Ok((connect_host_port(host, port)?, tls))
}

/// The `host:port` to connect to for `text`: a port from 1 to 65535, or
/// [`DEFAULT_PORT`] when `text` has none.
pub fn connect_addr(text: &str) -> Result<String, AddrError> {
    normalize(text, 1)
}

/// The `host:port` to listen on for `text`: a port from 0 (any free port)
/// to 65535, or [`DEFAULT_PORT`] when `text` has none.
pub fn listen_addr(text: &str) -> Result<String, AddrError> {
    normalize(text, 0)
}

/// `host:port` to connect to, from a host and a port given apart
/// (`CONNECT,host,port`).
pub fn connect_host_port(host: &str, port: &str) -> Result<String, AddrError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(AddrError::NoHost);
    }
    check_chars(host, host)?;
    Ok(join_host_port(host, parse_port(port, 1)?))
}

/// `host:port`, with IPv6 literals in brackets.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Refuses a host holding anything but letters, digits, `.`, `-`, `_`,
/// `:` and `%` (IPv6 literals and their zones) inside optional brackets:
/// no scheme, path or space is ever taken for a host (nor written to the
/// known-hosts file).
fn check_chars(host: &str, text: &str) -> Result<(), AddrError> {
    if text.contains("://") {
        let scheme = text.split_once("://").map_or("", |(s, _)| s);
        return Err(AddrError::UnknownScheme(format!("{scheme}://")));
    }
    let inner = host.strip_prefix('[').unwrap_or(host);
    let inner = inner.strip_suffix(']').unwrap_or(inner);
    match inner
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '%')))
    {
        Some(bad) => Err(AddrError::BadChar {
            text: text.to_string(),
            bad,
        }),
        None => Ok(()),
    }
}

fn normalize(text: &str, lowest: u16) -> Result<String, AddrError> {
    let (host, port) = split(text);
    check_chars(host, text)?;
    if host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .is_empty()
    {
        return Err(AddrError::NoHost);
    }
    match port {
        Some(port) => Ok(join_host_port(host, parse_port(port, lowest)?)),
        None if host.bytes().all(|b| b.is_ascii_digit()) => {
            Err(AddrError::PortAlone(host.to_string()))
        }
        None => Ok(join_host_port(host, DEFAULT_PORT)),
    }
}

/// The host and, if there is one, the port text of `text`.
fn split(text: &str) -> (&str, Option<&str>) {
    match text.rsplit_once(':') {
        // `[::1]`, or `::1` with no port: IPv6 literals are full of colons
        _ if text.starts_with('[') && text.ends_with(']') => (text, None),
        Some((host, _)) if host.contains(':') && !host.ends_with(']') => (text, None),
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    }
}

fn parse_port(port: &str, lowest: u16) -> Result<u16, AddrError> {
    match port.parse::<u16>() {
        Ok(number) if number >= lowest && port.bytes().all(|b| b.is_ascii_digit()) => Ok(number),
        _ => Err(AddrError::BadPort {
            port: port.to_string(),
            lowest,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad_port(port: &str, lowest: u16) -> AddrError {
        AddrError::BadPort {
            port: port.into(),
            lowest,
        }
    }

    #[test]
    fn a_host_alone_gets_the_default_port() {
        for (text, addr) in [
            ("files.example", "files.example:7070"),
            ("127.0.0.1", "127.0.0.1:7070"),
            ("127.0.0.1:9000", "127.0.0.1:9000"),
            ("[::1]:9000", "[::1]:9000"),
            ("[::1]", "[::1]:7070"),
            ("::1", "[::1]:7070"),
            ("fe80::1:2", "[fe80::1:2]:7070"),
        ] {
            assert_eq!(connect_addr(text).as_deref(), Ok(addr), "{text}");
            assert_eq!(listen_addr(text).as_deref(), Ok(addr), "{text}");
        }
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for text in ["h", "h:1", "::1", "[::1]:2"] {
            let once = connect_addr(text).unwrap();
            assert_eq!(connect_addr(&once), Ok(once.clone()));
        }
    }

    #[test]
    fn port_0_is_for_listening_only() {
        assert_eq!(listen_addr("127.0.0.1:0").as_deref(), Ok("127.0.0.1:0"));
        assert_eq!(connect_addr("host:0"), Err(bad_port("0", 1)));
        assert_eq!(connect_host_port("host", "0"), Err(bad_port("0", 1)));
    }

    #[test]
    fn what_is_not_an_address_says_why() {
        assert_eq!(connect_addr("host:+80"), Err(bad_port("+80", 1)));
        assert_eq!(connect_addr("[::1]:"), Err(bad_port("", 1)));
        assert_eq!(listen_addr("host:http"), Err(bad_port("http", 0)));
        assert_eq!(connect_addr("host:70000"), Err(bad_port("70000", 1)));
        assert_eq!(connect_addr(""), Err(AddrError::NoHost));
        assert_eq!(listen_addr(":7070"), Err(AddrError::NoHost));
        assert_eq!(connect_addr("[]:1"), Err(AddrError::NoHost));
        assert_eq!(
            listen_addr("7070"),
            Err(AddrError::PortAlone("7070".into()))
        );
        assert_eq!(
            bad_port("http", 1).to_string(),
            "port `http` is not a number from 1 to 65535"
        );
        assert_eq!(
            AddrError::PortAlone("7070".into()).to_string(),
            "`7070` is a port alone; give the host too, such as 127.0.0.1:7070"
        );
    }

    #[test]
    fn a_host_and_a_port_given_apart_join() {
        assert_eq!(
            connect_host_port("::1", "7070").as_deref(),
            Ok("[::1]:7070")
        );
        assert_eq!(connect_host_port("[::1]", "1").as_deref(), Ok("[::1]:1"));
        assert_eq!(connect_host_port("", "1"), Err(AddrError::NoHost));
    }

    #[test]
    fn a_scheme_or_a_slash_is_never_a_host() {
        for text in ["tsl://127.0.0.1:17070", "tcp://h:1", "https://h"] {
            let scheme = text.split_once("://").unwrap().0;
            let unknown = AddrError::UnknownScheme(format!("{scheme}://"));
            assert_eq!(split_scheme(text), Err(unknown.clone()), "{text}");
            assert_eq!(connect_addr(text), Err(unknown.clone()), "{text}");
            assert_eq!(listen_addr(text), Err(unknown), "{text}");
        }
        assert_eq!(split_scheme("TLS://h:1"), Ok(("h:1", true)));
        assert_eq!(split_scheme("tls://h:1"), Ok(("h:1", true)));
        assert_eq!(split_scheme("h:1"), Ok(("h:1", false)));
        for (text, bad) in [
            ("tls:/127.0.0.1:17070", '/'),
            ("a b:1", ' '),
            ("[::1/x]:1", '/'),
            ("h\\x", '\\'),
        ] {
            assert_eq!(
                connect_addr(text),
                Err(AddrError::BadChar {
                    text: text.into(),
                    bad
                }),
                "{text}"
            );
        }
        assert_eq!(
            connect_host_port("a/b", "1"),
            Err(AddrError::BadChar {
                text: "a/b".into(),
                bad: '/'
            })
        );
        assert_eq!(
            AddrError::UnknownScheme("tsl://".into()).to_string(),
            "unknown scheme `tsl://`; write tls://host:port (TLS) or host:port (plain TCP)"
        );
        assert_eq!(
            connect_addr("fe80::1%eth0").as_deref(),
            Ok("[fe80::1%eth0]:7070")
        );
    }

    #[test]
    fn tls_before_a_host_given_apart_from_its_port() {
        assert_eq!(
            split_host_port("tls://127.0.0.1", "17070"),
            Ok(("127.0.0.1:17070".to_string(), true))
        );
        assert_eq!(
            split_host_port("::1", "1"),
            Ok(("[::1]:1".to_string(), false))
        );
        assert_eq!(
            split_host_port("tsl://h", "1"),
            Err(AddrError::UnknownScheme("tsl://".into()))
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(join_host_port("127.0.0.1", 7070), "127.0.0.1:7070");
        assert_eq!(join_host_port("::1", 7070), "[::1]:7070");
        assert_eq!(join_host_port("[::1]", 7070), "[::1]:7070");
        assert_eq!(join_host_port("localhost", 1), "localhost:1");
    }
}
