//! Authentication on the server (`--auth FILE`): `AUTH,<token>` checked
//! against the token file, the refusal of other requests until then, the
//! deadline for it, and what an accepted token grants the session (its
//! label in the log, read-only access, a sub-folder as its root).

use super::{Connection, Flow, Outcome};
use crate::auth::{Access, Check, Reload, Token};
use crate::protocol::{AUTH_FAILED, AUTH_REQUIRED, Extension, Request};
use std::io;
use std::sync::Arc;

/// Whether a request may come before the session authenticated.
pub(super) fn allowed_before_auth(request: &Request) -> bool {
    matches!(
        request,
        Request::Bye | Request::Extension(Extension::Features | Extension::Auth(_))
    )
}

impl Connection<'_> {
    /// Refuses a request that came before `AUTH` succeeded; an upload's
    /// body is read and dropped, as for any refused upload.
    pub(super) fn refuse_unauthenticated(&mut self, request: &Request) -> io::Result<Flow> {
        if let Request::Write { name, size } = request {
            return self.refuse_upload(&format!("WRITE {name}"), *size, AUTH_REQUIRED);
        }
        let line = request.to_line();
        self.log_error(
            &line.trim_end().replace(',', " "),
            &format!("refused: {AUTH_REQUIRED}"),
        );
        self.reply_error(AUTH_REQUIRED)?;
        Ok(Flow::Continue)
    }

    /// `AUTH,<token>`: `OK <label>` and the grant of its line, or
    /// [`AUTH_FAILED`] and the connection closed (one attempt per
    /// connection). The token is never logged.
    pub(super) fn authenticate(&mut self, token: &Token) -> io::Result<Flow> {
        let Some(tokens) = self.shared.config.auth.as_ref().map(Arc::clone) else {
            let refusal = "this server takes no tokens (it was started without --auth)";
            self.log_error("AUTH", refusal);
            self.reply_error(refusal)?;
            return Ok(Flow::Continue);
        };
        if let Some(label) = &self.label {
            let refusal = format!("already authenticated as `{label}`");
            self.log_error("AUTH", &refusal);
            self.reply_error(&refusal)?;
            return Ok(Flow::Continue);
        }
        let (check, reload) = tokens.check(token.secret().as_bytes());
        match reload {
            Some(Reload::Read(count)) => self.shared.log(format_args!(
                "token file `{}` changed: read again, {count} token{}",
                tokens.path().display(),
                if count == 1 { "" } else { "s" }
            )),
            Some(Reload::Failed(why)) => self.shared.log(format_args!(
                "token file changed and cannot be used: {why}; every token is refused \
                 until it is fixed"
            )),
            None => {}
        }
        let grant = match check {
            Check::Granted(grant) => grant,
            Check::Refused => {
                self.log_error("AUTH", "refused: no such token; closing");
                self.close_with_error(AUTH_FAILED);
                return Ok(Flow::Close);
            }
            Check::Broken(why) => {
                self.log_error("AUTH", &format!("cannot check tokens: {why}; closing"));
                self.close_with_error(
                    "the server cannot check tokens now (its token file is unreadable \
                     or malformed); closing",
                );
                return Ok(Flow::Close);
            }
        };
        if let Some(folder) = &grant.folder {
            match self.shared.served.sub(folder) {
                Ok(root) => self.root = Arc::new(root),
                Err(e) => {
                    self.log_error(
                        "AUTH",
                        &format!(
                            "the folder of the token `{}` cannot be opened: {e}; closing",
                            grant.label
                        ),
                    );
                    self.close_with_error(
                        "the folder this token grants is not available on the server; closing",
                    );
                    return Ok(Flow::Close);
                }
            }
        }
        self.read_only |= grant.access == Access::ReadOnly;
        self.label = Some(grant.label.clone());
        self.shared.authenticated(self.id);
        self.auth_by = None;
        self.logged(
            "AUTH",
            Outcome::Ok {
                text: &format!("OK ({})", grant.describe()),
                bytes: 0,
            },
        );
        self.conn
            .write_all(format!("OK {}\n", grant.label).as_bytes())?;
        Ok(Flow::Continue)
    }

    /// Closes a connection that did not authenticate in time.
    pub(super) fn say_no_auth(&mut self) {
        let secs = self.shared.config.auth_time.as_secs_f64();
        self.log(&format!("closed: no AUTH within {secs} s"));
        self.close_with_error(&format!("no authentication within {secs} s; closing"));
    }

    /// Why a change is refused: the server, or this session's token, is
    /// read-only.
    pub(super) fn read_only_reason(&self) -> String {
        match &self.label {
            _ if self.shared.config.read_only => "server is read-only".to_string(),
            Some(label) => format!("the token `{label}` is read-only"),
            None => "this session's token is read-only".to_string(),
        }
    }
}
