//! Who is calling: server-side sessions for pages (cookie), bearer tokens for the
//! API, and the guard against cross-site state changes.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use irflow_domain::Actor;
use irflow_store::{AuditOutcome, NewAuditEvent, UserRecord};
use jiff::{SignedDuration, Timestamp};

use crate::auth::secret_hash;
use crate::{AppError, AppState, api, auth};

/// The session cookie's name: `__Host-` prefixed when cookies are `Secure`, which
/// binds it to this exact origin.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-irflow_session"
    } else {
        "irflow_session"
    }
}

/// The pre-sign-in anti-forgery cookie's name.
pub fn login_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-irflow_login"
    } else {
        "irflow_login"
    }
}

/// A `Set-Cookie` value with our standard flags.
pub fn cookie(name: &str, value: &str, secure: bool, max_age_seconds: Option<i64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age_seconds {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

/// Reads one cookie from the request.
pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The client's address, for rate limiting and the audit log.
pub fn client_address(parts: &Parts) -> String {
    client_address_of(parts.extensions.get::<ConnectInfo<SocketAddr>>())
}

/// The client's address from the connection info, when the server recorded it.
pub fn client_address_of(connect: Option<&ConnectInfo<SocketAddr>>) -> String {
    connect.map_or_else(|| "unknown".to_owned(), |ci| ci.0.ip().to_string())
}

/// The client's address as an extractor (never fails).
#[derive(Debug, Clone)]
pub struct ClientAddress(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(client_address(parts)))
    }
}

/// A signed-in person on a page request.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The user.
    pub user: UserRecord,
    /// The session's anti-forgery token (goes into every form).
    pub csrf: String,
    /// The client address.
    pub client: String,
}

impl SignedIn {
    /// The actor for the store.
    pub fn actor(&self) -> Actor {
        self.user.actor().from_client(self.client.clone())
    }
}

/// What a page request without a session gets: the sign-in page, then back here.
#[derive(Debug)]
pub enum PageRejection {
    /// Not signed in.
    SignIn(String),
    /// The store failed.
    Error(AppError),
}

impl IntoResponse for PageRejection {
    fn into_response(self) -> Response {
        match self {
            PageRejection::SignIn(next) => {
                let target = format!("/login?next={}", urlencode(&next));
                Redirect::to(&target).into_response()
            }
            PageRejection::Error(e) => crate::pages::error_page_plain(&e),
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = PageRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let client = client_address(parts);
        let config = state.config();
        let cookie_name = session_cookie_name(config.cookie_secure);
        if let Some(token) = read_cookie(&parts.headers, cookie_name) {
            let found = state
                .store()
                .live_session(
                    &secret_hash(token),
                    Timestamp::now(),
                    SignedDuration::from_mins(config.session_idle_minutes),
                )
                .await
                .map_err(|e| PageRejection::Error(e.into()))?;
            if let Some(session) = found {
                return Ok(SignedIn {
                    user: session.user,
                    csrf: session.csrf_token,
                    client,
                });
            }
        }
        audit_anonymous(state, parts, &client).await;
        let next = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        Err(PageRejection::SignIn(if parts.method == Method::GET {
            next
        } else {
            "/".to_owned()
        }))
    }
}

/// An API caller, authenticated by `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    /// The token's user.
    pub user: UserRecord,
    /// The client address.
    pub client: String,
}

impl ApiCaller {
    /// The actor for the store.
    pub fn actor(&self) -> Actor {
        self.user.actor().from_client(self.client.clone())
    }
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = api::ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let client = client_address(parts);
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        if let Some(token) = token {
            let user = state
                .store()
                .user_for_api_token(&auth::secret_hash(token))
                .await
                .map_err(|e| api::ApiError(e.into()))?;
            if let Some(user) = user {
                return Ok(ApiCaller { user, client });
            }
        }
        audit_anonymous(state, parts, &client).await;
        Err(api::ApiError(AppError::Unauthenticated))
    }
}

/// Records a refused anonymous attempt on patient data (the case pages and API,
/// the audit log). Other routes hold no patient data and are not audited here.
async fn audit_anonymous(state: &AppState, parts: &Parts, client: &str) {
    let path = parts.uri.path();
    let rest = path.strip_prefix("/api/v1").unwrap_or(path);
    let (entity_type, entity_id) = if let Some(after) = rest.strip_prefix("/cases") {
        let id = after
            .trim_start_matches('/')
            .split('/')
            .next()
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        ("case", id)
    } else if rest.starts_with("/audit") || rest.starts_with("/admin/audit") {
        ("audit_log", None)
    } else {
        return;
    };
    let action = match (parts.method.clone(), &entity_id) {
        (Method::GET, Some(_)) => "read",
        (Method::GET, None) => "list",
        _ => "write",
    };
    let mut event = NewAuditEvent::new(
        &Actor::system("anonymous"),
        action,
        entity_type,
        AuditOutcome::Denied,
    )
    .detail("not signed in");
    event.actor.username = "anonymous".to_owned();
    event.entity_id = entity_id;
    event.client = Some(client.to_owned());
    if let Err(e) = state.store().record_audit(event).await {
        tracing::error!(error = %e, "could not record audit event");
    }
}

/// Refuses state-changing requests that a browser says come from another site
/// (`Sec-Fetch-Site: cross-site`) or whose `Origin` is not this host. Forms also
/// carry a per-session token, checked by each handler; this is the outer wall.
pub async fn reject_cross_site_writes(request: Request, next: Next) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe && is_cross_site(request.headers()) {
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain")],
            "cross-site request refused\n",
        )
            .into_response();
    }
    next.run(request).await
}

fn is_cross_site(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if origin == "null" {
        return true;
    }
    let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    host != Some(origin_host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_site_detection() {
        let mut h = HeaderMap::new();
        h.insert(
            header::HOST,
            "127.0.0.1:8080".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert!(!is_cross_site(&h));
        h.insert(
            header::ORIGIN,
            "http://127.0.0.1:8080"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        assert!(!is_cross_site(&h));
        h.insert(
            header::ORIGIN,
            "http://evil.example"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        assert!(is_cross_site(&h));
        h.remove(header::ORIGIN);
        h.insert(
            "sec-fetch-site",
            "cross-site".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert!(is_cross_site(&h));
    }

    #[test]
    fn cookies_are_read_and_flagged() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; irflow_session=xyz; b=2"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(read_cookie(&h, "irflow_session"), Some("xyz"));
        assert_eq!(read_cookie(&h, "missing"), None);
        let c = cookie("__Host-irflow_session", "v", true, None);
        assert!(
            c.contains("HttpOnly")
                && c.contains("Secure")
                && c.contains("SameSite=Lax")
                && c.contains("Path=/")
        );
        assert_eq!(urlencode("/cases?state=a b"), "/cases%3Fstate%3Da%20b");
    }
}
