//! The server's log lines on stderr, in one of two formats: text (the
//! default: an RFC 3339 timestamp, the peer, then the request and its
//! outcome, `REQUEST -> OUTCOME`) or JSON (`--log-format json`: one object
//! per line; docs/events.md has the fields). Requests are logged with
//! their outcome, bytes and duration; other happenings (a connection
//! closed, a client refused) as a message.

use crate::auth::holds_token;
use serde::Serialize;
use std::time::Duration;

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `TIME PEER REQUEST -> OUTCOME`, for people.
    #[default]
    Text,
    /// One JSON object per line, for log tools.
    Json,
}

impl LogFormat {
    /// `text` or `json`, as `--log-format` takes them.
    pub fn parse(text: &str) -> Result<LogFormat, String> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "`{text}` is not a log format; use `text` or `json`"
            )),
        }
    }
}

/// How a request ended.
pub(crate) enum Outcome<'a> {
    /// Done; `bytes` of file body moved (0 for requests without one).
    Ok { text: &'a str, bytes: u64 },
    /// Refused or failed, with the reason.
    Error(&'a str),
}

/// A request's line in the JSON log.
#[derive(Serialize)]
struct RequestLine<'a> {
    time: String,
    peer: &'a str,
    /// The label of the token the session authenticated with.
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<&'a str>,
    request: &'a str,
    /// `ok` or `error`.
    result: &'static str,
    /// The outcome as the text log shows it: the reply, or the reason.
    message: &'a str,
    bytes: u64,
    duration_ms: f64,
}

/// Any other line in the JSON log.
#[derive(Serialize)]
struct MessageLine<'a> {
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<&'a str>,
    message: &'a str,
}

/// Who a line is about: the peer's address, and the label of its token
/// once it authenticated (`[label]` in the text log).
#[derive(Clone, Copy)]
pub(crate) struct Who<'a> {
    pub peer: &'a str,
    pub identity: Option<&'a str>,
}

impl Who<'_> {
    /// `PEER` or `PEER [label]`, for the text log.
    fn text(&self) -> String {
        match self.identity {
            Some(label) => format!("{} [{label}]", self.peer),
            None => self.peer.to_string(),
        }
    }
}

/// The line for `request` from `who` that ended with `outcome` after
/// `took`.
pub(crate) fn request(
    format: LogFormat,
    who: Who<'_>,
    request: &str,
    outcome: &Outcome<'_>,
    took: Duration,
) -> String {
    let (result, message, bytes) = match *outcome {
        Outcome::Ok { text, bytes } => ("ok", text, bytes),
        Outcome::Error(text) => ("error", text, 0),
    };
    // a token typed where a request or name goes (`AUTH ioe_…`,
    // `STAT,ioe_…`) never reaches the log, nor the reason that quotes it
    let request = if holds_token(request) {
        "a line holding a token"
    } else {
        request
    };
    let message = match (holds_token(message), result) {
        (false, _) => message,
        (true, "ok") => "(not logged)",
        (true, _) => "refused (not logged)",
    };
    match format {
        LogFormat::Text => format!(
            "{} {} {request} -> {message}",
            crate::events::now(),
            who.text()
        ),
        LogFormat::Json => json(&RequestLine {
            time: crate::events::now(),
            peer: who.peer,
            identity: who.identity,
            request,
            result,
            message,
            bytes,
            duration_ms: (took.as_secs_f64() * 1e6).round() / 1e3,
        }),
    }
}

/// A line that is not a request's: about `who`, or server-wide.
pub(crate) fn message(format: LogFormat, who: Option<Who<'_>>, message: &str) -> String {
    let message = if holds_token(message) {
        "a line holding a token (not logged)"
    } else {
        message
    };
    match (format, who) {
        (LogFormat::Text, Some(who)) => {
            format!("{} {} {message}", crate::events::now(), who.text())
        }
        (LogFormat::Text, None) => format!("{} {message}", crate::events::now()),
        (LogFormat::Json, who) => json(&MessageLine {
            time: crate::events::now(),
            peer: who.map(|who| who.peer),
            identity: who.and_then(|who| who.identity),
            message,
        }),
    }
}

fn json(line: &impl Serialize) -> String {
    // strings and numbers always serialize
    serde_json::to_string(line).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_line_in_each_format() {
        let outcome = Outcome::Ok {
            text: "5 bytes",
            bytes: 5,
        };
        let took = Duration::from_micros(1500);
        let who = Who {
            peer: "1.2.3.4:5",
            identity: None,
        };
        let text = request(LogFormat::Text, who, "READ a", &outcome, took);
        let (time, rest) = text.split_once(' ').unwrap();
        assert!(time.parse::<jiff::Timestamp>().is_ok(), "{text}");
        assert_eq!(rest, "1.2.3.4:5 READ a -> 5 bytes");
        let json = request(LogFormat::Json, who, "READ a", &outcome, took);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(value.get("identity").is_none(), "{json}");
        assert_eq!(value["result"], "ok");
        assert_eq!(value["bytes"], 5);
        assert_eq!(value["duration_ms"], 1.5);
        let refused = Outcome::Error("no such file");
        let who = Who {
            peer: "p",
            identity: Some("backup"),
        };
        let text = request(LogFormat::Text, who, "READ b", &refused, took);
        assert!(
            text.ends_with(" p [backup] READ b -> no such file"),
            "{text}"
        );
        let json = request(LogFormat::Json, who, "READ b", &refused, took);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["identity"], "backup");
        assert_eq!(
            (&value["result"], &value["message"]),
            (&"error".into(), &"no such file".into())
        );
    }
}
