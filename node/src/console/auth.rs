//! Login links, sessions and CSRF tokens of the console.
//!
//! Tokens are 32 bytes of the operating system's randomness in hex. The maps are keyed by a
//! hash of the token, so a lookup's timing tells nothing about a valid token; a CSRF token is
//! compared in constant time.

use super::{lock, render, Shared, LOGIN_LINK_TTL, MAX_LOGIN_LINKS, MAX_SESSIONS, SESSION_IDLE};
use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

type Key = [u8; 32];

fn key_of(token: &str) -> Key {
    grove_protocol::ids::hash_parts("grove/console/token", &[token.as_bytes()])
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    grove_protocol::ids::hex(&bytes)
}

/// Constant-time equality of two byte strings of the same length.
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

struct Session {
    csrf: String,
    last_used: Instant,
}

/// Login links not yet used and open sessions.
#[derive(Default)]
pub(super) struct Auth {
    /// Login link -> when it was made.
    links: BTreeMap<Key, Instant>,
    sessions: BTreeMap<Key, Session>,
}

impl Auth {
    /// A new one-time login token.
    pub(super) fn new_link(&mut self, now: Instant) -> String {
        self.links
            .retain(|_, made| now.duration_since(*made) < LOGIN_LINK_TTL);
        while self.links.len() >= MAX_LOGIN_LINKS {
            let oldest = self
                .links
                .iter()
                .min_by_key(|(_, made)| **made)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => self.links.remove(&k),
                None => break,
            };
        }
        let token = new_token();
        self.links.insert(key_of(&token), now);
        token
    }

    /// Redeems a login token (once): a new session's token, or `None` if the token is unknown,
    /// used or expired.
    pub(super) fn redeem(&mut self, token: &str, now: Instant) -> Option<String> {
        let made = self.links.remove(&key_of(token))?;
        if now.duration_since(made) >= LOGIN_LINK_TTL {
            return None;
        }
        self.sessions
            .retain(|_, s| now.duration_since(s.last_used) < SESSION_IDLE);
        while self.sessions.len() >= MAX_SESSIONS {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => self.sessions.remove(&k),
                None => break,
            };
        }
        let session = new_token();
        self.sessions.insert(
            key_of(&session),
            Session {
                csrf: new_token(),
                last_used: now,
            },
        );
        Some(session)
    }

    /// The CSRF token of a live session (and marks it used), or `None`.
    fn session(&mut self, token: &str, now: Instant) -> Option<String> {
        let key = key_of(token);
        let s = self.sessions.get_mut(&key)?;
        if now.duration_since(s.last_used) >= SESSION_IDLE {
            self.sessions.remove(&key);
            return None;
        }
        s.last_used = now;
        Some(s.csrf.clone())
    }

    pub(super) fn sign_out(&mut self, token: &str) {
        self.sessions.remove(&key_of(token));
    }
}

/// The value of cookie `name` in a request's headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// The signed-in owner: a request with a live session cookie. Any page but the login needs
/// one; without it the answer is `401` and nothing happens.
pub(super) struct Owner {
    pub(super) session: String,
    pub(super) csrf: String,
}

impl FromRequestParts<Arc<Shared>> for Owner {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Owner, Response> {
        let session = cookie(&parts.headers, &shared.cookie).map(str::to_string);
        let csrf = session
            .as_deref()
            .and_then(|s| lock(&shared.auth).session(s, Instant::now()));
        match (session, csrf) {
            (Some(session), Some(csrf)) => Ok(Owner { session, csrf }),
            _ => Err(render::refusal(
                StatusCode::UNAUTHORIZED,
                "You are not signed in to this console. Run `grove console` for a login link.",
            )),
        }
    }
}

/// A form with the session's CSRF token beside its own fields.
#[derive(Deserialize)]
struct WithCsrf<F> {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    form: F,
}

/// A change: a form posted by the signed-in owner with the session's CSRF token. Every `POST`
/// handler but the uploads (which check the token as the first multipart field, see
/// [`Owner::check_csrf`]) takes one; a missing session gives `401`, a missing or wrong
/// token `403`, and the handler never runs.
pub(super) struct Change<F>(pub(super) Owner, pub(super) F);

impl<F: DeserializeOwned + Send + 'static> FromRequest<Arc<Shared>> for Change<F> {
    type Rejection = Response;

    async fn from_request(request: Request, shared: &Arc<Shared>) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let owner = Owner::from_request_parts(&mut parts, shared).await?;
        let request = Request::from_parts(parts, body);
        let Form(WithCsrf { csrf, form }) = Form::<WithCsrf<F>>::from_request(request, shared)
            .await
            .map_err(|e| render::refusal(StatusCode::BAD_REQUEST, &format!("bad form: {e}")))?;
        owner.check_csrf(&csrf).map_err(|r| *r)?;
        Ok(Change(owner, form))
    }
}

impl Owner {
    /// Refuses a change whose CSRF token is not this session's.
    pub(super) fn check_csrf(&self, token: &str) -> Result<(), Box<Response>> {
        if same(token.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(Box::new(render::refusal(
                StatusCode::FORBIDDEN,
                "This form is stale or forged (its CSRF token is not this session's): nothing \
                 was changed.",
            )))
        }
    }
}

/// The `Set-Cookie` value of a new session.
pub(super) fn session_cookie(name: &str, token: &str) -> String {
    format!("{name}={token}; HttpOnly; SameSite=Strict; Path=/")
}

/// The `Set-Cookie` value that removes the session cookie.
pub(super) fn cleared_cookie(name: &str) -> String {
    format!("{name}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_login_link_works_once_and_not_after_it_expires() {
        let mut auth = Auth::default();
        let t0 = Instant::now();
        let link = auth.new_link(t0);
        let session = auth.redeem(&link, t0).expect("a fresh link signs in");
        assert!(auth.session(&session, t0).is_some());
        assert!(auth.redeem(&link, t0).is_none(), "the link worked twice");
        let late = auth.new_link(t0);
        assert!(auth.redeem(&late, t0 + LOGIN_LINK_TTL).is_none());
        assert!(auth.redeem("not a token", t0).is_none());
    }

    #[test]
    fn sessions_expire_when_idle_and_on_sign_out() {
        let mut auth = Auth::default();
        let t0 = Instant::now();
        let link = auth.new_link(t0);
        let s = auth.redeem(&link, t0).unwrap();
        let csrf = auth.session(&s, t0 + Duration::from_secs(60)).unwrap();
        assert_eq!(csrf.len(), 64);
        assert!(auth
            .session(&s, t0 + Duration::from_secs(60) + SESSION_IDLE)
            .is_none());
        let link = auth.new_link(t0);
        let s = auth.redeem(&link, t0).unwrap();
        auth.sign_out(&s);
        assert!(auth.session(&s, t0).is_none());
    }

    #[test]
    fn links_and_sessions_are_bounded() {
        let mut auth = Auth::default();
        let t0 = Instant::now();
        let links: Vec<String> = (0..MAX_LOGIN_LINKS + 3)
            .map(|_| auth.new_link(t0))
            .collect();
        assert_eq!(auth.links.len(), MAX_LOGIN_LINKS);
        for l in &links[..] {
            let _ = auth.redeem(l, t0);
        }
        for _ in 0..MAX_SESSIONS + 3 {
            let l = auth.new_link(t0);
            auth.redeem(&l, t0).unwrap();
        }
        assert_eq!(auth.sessions.len(), MAX_SESSIONS);
    }

    #[test]
    fn the_session_cookie_is_read_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; grove_console_7390=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, "grove_console_7390"), Some("abc"));
        assert_eq!(cookie(&h, "grove_console_7391"), None);
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"ab", b"abc"));
    }
}
