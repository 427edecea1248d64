//! Who may call what: one middleware in front of every route, the sign-in page and sign-out.
//!
//! A request proves who it is with a bearer token (`Authorization: Bearer oio_…`: scripts) or the
//! session cookie set by `/login` (browsers). [`policy`] decides, from the method and path alone,
//! which role a route needs and whether it changes anything; it is the one table of access rules
//! and fails closed (an unknown mutating route needs `admin`). A browser request that changes
//! something must also carry the session's CSRF token (form field `csrf_token` or header
//! `x-csrf-token`) and, when it sends `Origin`, come from this host: the cookie is ambient, the
//! token is not. Bearer requests are not ambient and need no CSRF token.
//!
//! Unauthenticated API and server-function calls get 401 with the JSON error body; pages redirect
//! to `/login?next=…`. A role too low gets 403.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Form, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use domain::Role;
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::limits::RateKey;
use oio_application::auth::{random_hex, AuthError, AuthService, Principal, Via};

pub const SESSION_COOKIE: &str = "oio_session";
const LOGIN_CSRF_COOKIE: &str = "oio_login_csrf";
pub const CSRF_FIELD: &str = "csrf_token";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a sign-in form stays valid (the life of its CSRF cookie).
const LOGIN_FORM_TTL: Duration = Duration::from_secs(3600);
/// Largest form body the CSRF check reads (forms are small; the API's own limit still applies).
const MAX_FORM_BYTES: usize = 256 * 1024;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: sign-in, health probes, metrics, static assets.
    Public,
    Requires {
        role: Role,
        mutates: bool,
    },
}

const fn needs(role: Role, mutates: bool) -> Access {
    Access::Requires { role, mutates }
}

/// Server functions (`/api/sf/<name>`) by name: every one is a POST, so the method says nothing.
fn server_function(name: &str) -> Access {
    match name {
        "list_sessions" | "get_overview" | "get_session" | "list_tasks" | "get_task_tree"
        | "list_agents" | "get_agent" | "get_status_board" | "current_user" => {
            needs(Role::Viewer, false)
        }
        "list_inbox" | "get_guardrails" | "get_tree_budget" => needs(Role::Viewer, false),
        "cancel_session" | "retry_session" | "create_task" => needs(Role::Operator, true),
        "answer_inbox" => needs(Role::Operator, true),
        "save_agent" => needs(Role::Admin, true),
        _ => needs(Role::Admin, true),
    }
}

/// The access rule of a route. Every route of the server goes through this table.
pub fn policy(method: &Method, path: &str) -> Access {
    let public = path == "/login"
        || path == "/healthz"
        || path == "/readyz"
        || path == "/metrics"
        || path == "/favicon.svg"
        || path == "/robots.txt"
        || path.starts_with("/pkg/");
    if public {
        return Access::Public;
    }
    if path == "/logout" {
        return needs(Role::Viewer, true);
    }
    if let Some(name) = path.strip_prefix("/api/sf/") {
        return server_function(name);
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return needs(Role::Viewer, false);
    }
    let admin_only = ["/api/v1/agents", "/api/v1/fleet"]
        .iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")));
    if admin_only {
        needs(Role::Admin, true)
    } else if path.starts_with("/api/v1/") {
        needs(Role::Operator, true)
    } else {
        needs(Role::Admin, true)
    }
}

#[derive(Clone)]
pub struct AuthState {
    pub service: Arc<AuthService>,
    pub secure_cookie: bool,
    /// `/status` (the wall screen) readable without signing in (`auth.public_status`).
    pub public_status: bool,
}

/// One of our cookies: sent back only to this site (`Path=/`), never readable by scripts
/// (`HttpOnly`), never sent along with a request another site starts (`SameSite=Strict`), and
/// over HTTPS only when the deployment says it is served so (`auth.secure_cookie`).
fn our_cookie(
    name: &'static str,
    value: String,
    max_age: Duration,
    secure: bool,
) -> Cookie<'static> {
    let max_age = time::Duration::try_from(max_age).unwrap_or(time::Duration::MAX);
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(max_age)
        .build()
}

/// What deletes the browser's cookie `name`: the same cookie, empty and already expired (a
/// cookie is only replaced by one with the same name and path).
fn removal(name: &'static str, secure: bool) -> Cookie<'static> {
    let mut cookie = our_cookie(name, String::new(), Duration::ZERO, secure);
    cookie.make_removal();
    cookie
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Equal-length comparison whose time does not depend on where the values differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn wants_json(path: &str) -> bool {
    path.starts_with("/api/")
}

fn json_error(status: StatusCode, field: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": { "field": field, "message": message } })),
    )
        .into_response()
}

fn unauthenticated(path: &str, path_and_query: &str) -> Response {
    if wants_json(path) {
        let mut response = json_error(
            StatusCode::UNAUTHORIZED,
            "authorization",
            "sign in or send `Authorization: Bearer <token>` (create one with `server token create`)",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"oio\""),
        );
        response
    } else {
        let next: String =
            url::form_urlencoded::byte_serialize(path_and_query.as_bytes()).collect();
        Redirect::to(&format!("/login?next={next}")).into_response()
    }
}

fn forbidden(path: &str, field: &str, message: &str) -> Response {
    if wants_json(path) {
        json_error(StatusCode::FORBIDDEN, field, message)
    } else {
        (
            StatusCode::FORBIDDEN,
            Html(page(
                "FORBIDDEN",
                &format!("<p>{}</p><p><a href=\"/\">back</a></p>", escape(message)),
            )),
        )
            .into_response()
    }
}

/// The middleware: authenticates, applies [`policy`], checks CSRF, and leaves the principal
/// (and a [`domain::CurrentUser`] for pages) in the request's extensions.
pub async fn authenticate(
    State(state): State<AuthState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or(path.clone(), |pq| pq.as_str().to_owned());
    let access = if state.public_status && path == app::pages::STATUS_PATH {
        Access::Public
    } else {
        policy(request.method(), &path)
    };
    let principal = match principal_of(&state, request.headers()).await {
        Ok(principal) => principal,
        Err(AuthError::Unavailable(detail)) => {
            tracing::warn!(%detail, "authentication failed: credential store unavailable");
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "authorization",
                "storage is unavailable",
            );
        }
        Err(_) => None,
    };
    let Access::Requires { role, mutates } = access else {
        if let Some(principal) = principal {
            insert_principal(&mut request, principal);
        }
        return next.run(request).await;
    };
    let Some(principal) = principal else {
        return unauthenticated(&path, &path_and_query);
    };
    if !principal.role.allows(role) {
        tracing::info!(user = %principal.name, role = %principal.role, required = %role, %path, "forbidden");
        return forbidden(
            &path,
            "role",
            &format!(
                "this needs the {role} role; {} has {}",
                principal.name, principal.role
            ),
        );
    }
    if mutates {
        if let Via::Session { csrf } = &principal.via {
            if !same_origin(request.headers()) {
                return forbidden(&path, "origin", "cross-origin request refused");
            }
            let (checked, passed) = match check_csrf(request, csrf).await {
                Ok(checked) => checked,
                Err(response) => return response,
            };
            if !passed {
                return forbidden(
                    &path,
                    CSRF_FIELD,
                    "missing or wrong CSRF token: reload the page and try again",
                );
            }
            request = checked;
        }
    }
    insert_principal(&mut request, principal);
    next.run(request).await
}

fn insert_principal(request: &mut Request, principal: Principal) {
    request
        .extensions_mut()
        .insert(RateKey(principal.rate_key()));
    request.extensions_mut().insert(principal.current_user());
    request.extensions_mut().insert(principal);
}

async fn principal_of(
    state: &AuthState,
    headers: &HeaderMap,
) -> Result<Option<Principal>, AuthError> {
    if let Some(token) = bearer(headers) {
        return state.service.token(token).await.map(Some);
    }
    match CookieJar::from_headers(headers).get(SESSION_COOKIE) {
        Some(cookie) => state.service.session(cookie.value()).await.map(Some),
        None => Ok(None),
    }
}

/// `Origin`, when sent, names this host (the `Host` the browser addressed).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = url::Url::parse(origin).ok().map(|u| match u.port() {
        Some(port) => format!("{}:{port}", u.host_str().unwrap_or_default()),
        None => u.host_str().unwrap_or_default().to_owned(),
    });
    matches!((origin_host, host), (Some(o), Some(h)) if o == h)
}

/// The request back (its body re-attached) and whether it carries `expected`.
async fn check_csrf(request: Request, expected: &str) -> Result<(Request, bool), Response> {
    if let Some(sent) = request
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        let passed = same_secret(sent, expected);
        return Ok((request, passed));
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((request, false));
    }
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_FORM_BYTES).await.map_err(|_| {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body",
            &format!("a form may hold at most {MAX_FORM_BYTES} bytes"),
        )
    })?;
    let passed = url::form_urlencoded::parse(&bytes)
        .any(|(k, v)| k == CSRF_FIELD && same_secret(&v, expected));
    Ok((Request::from_parts(parts, Body::from(bytes)), passed))
}

/// `/login` (the form and its post) and `/logout`.
pub fn routes(state: AuthState) -> Router {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .with_state(state)
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf_token: String,
    next: Option<String>,
}

/// Only a path on this site: `/x`, never `//host` or `http://…` (no open redirect). Control
/// characters and whitespace are refused outright: browsers drop tabs and newlines from a URL, so
/// `/<TAB>/evil.example` would become `//evil.example`, another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>OIO // {title}</title><link rel=\"stylesheet\" href=\"/pkg/oio.css\">\
         <link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\"></head>\
         <body class=\"min-h-screen\"><header class=\"border-b-4 border-ink px-4 py-2\">\
         <span class=\"font-bold text-lg tracking-tight\">OIO//ORCHESTRATOR</span></header>\
         <main class=\"p-4\"><h1 class=\"font-bold text-xl mb-2\">{title}</h1>{body}</main></body></html>"
    )
}

fn login_page(
    state: &AuthState,
    status: StatusCode,
    next: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    // Sign-in CSRF: the form carries the value of a cookie set with it (double submit), so a
    // foreign site cannot sign a browser in to an account of its choosing.
    let csrf = random_hex(32);
    let error = error.map_or(String::new(), |e| {
        format!(
            "<p role=\"alert\" data-testid=\"login-error\" class=\"border-2 border-ink p-2 font-bold\">{}</p>",
            escape(e)
        )
    });
    let body = format!(
        "{error}<form method=\"post\" action=\"/login\" data-testid=\"login\" \
         class=\"flex flex-col gap-2 border-2 border-ink p-2 max-w-md\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\
         <label>username <input name=\"username\" autocomplete=\"username\" required value=\"{user}\" \
         class=\"border-2 border-ink px-1\"></label>\
         <label>password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" \
         required class=\"border-2 border-ink px-1\"></label>\
         <button type=\"submit\" class=\"px-2 border-2 border-ink font-bold\">[ SIGN IN ]</button></form>",
        next = escape(next),
        user = escape(username),
    );
    let csrf_cookie = our_cookie(LOGIN_CSRF_COOKIE, csrf, LOGIN_FORM_TTL, state.secure_cookie);
    (
        status,
        CookieJar::new().add(csrf_cookie),
        [(header::CACHE_CONTROL, "no-store")],
        Html(page("SIGN IN", &body)),
    )
        .into_response()
}

async fn login_form(State(state): State<AuthState>, Query(query): Query<LoginQuery>) -> Response {
    login_page(
        &state,
        StatusCode::OK,
        &safe_next(query.next.as_deref()),
        "",
        None,
    )
}

async fn login(
    State(state): State<AuthState>,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let cookie_csrf = jar.get(LOGIN_CSRF_COOKIE).map_or("", |c| c.value());
    if cookie_csrf.is_empty() || !same_secret(cookie_csrf, &form.csrf_token) {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            &next,
            &form.username,
            Some("the sign-in form expired: try again"),
        );
    }
    match state.service.sign_in(&form.username, &form.password).await {
        Ok(signed_in) => {
            tracing::info!(user = %signed_in.principal.name, "signed in");
            let session = our_cookie(
                SESSION_COOKIE,
                signed_in.cookie.expose_secret().to_owned(),
                state.service.session_ttl(),
                state.secure_cookie,
            );
            // The sign-in form's token has served its purpose.
            let jar = jar
                .add(session)
                .add(removal(LOGIN_CSRF_COOKIE, state.secure_cookie));
            (jar, Redirect::to(&next)).into_response()
        }
        Err(AuthError::Unavailable(detail)) => {
            tracing::warn!(%detail, "sign-in failed: credential store unavailable");
            login_page(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                &next,
                &form.username,
                Some("storage is unavailable: try again shortly"),
            )
        }
        Err(_) => login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            &next,
            &form.username,
            Some("wrong username or password"),
        ),
    }
}

/// Ends the browser session (the middleware already checked its CSRF token).
async fn logout(State(state): State<AuthState>, jar: CookieJar) -> Response {
    if let Some(cookie) = jar.get(SESSION_COOKIE) {
        if let Err(e) = state.service.sign_out(cookie.value()).await {
            tracing::warn!(error = %e, "sign-out: could not delete the session");
        }
    }
    let jar = jar.add(removal(SESSION_COOKIE, state.secure_cookie));
    (jar, Redirect::to("/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_need_viewer_and_mutations_operator_or_admin() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(policy(&get, "/"), needs(Role::Viewer, false));
        assert_eq!(policy(&get, "/api/v1/sessions"), needs(Role::Viewer, false));
        assert_eq!(
            policy(&post, "/api/v1/sessions"),
            needs(Role::Operator, true)
        );
        assert_eq!(
            policy(&post, "/api/v1/sessions/x/cancel"),
            needs(Role::Operator, true)
        );
        assert_eq!(policy(&post, "/api/v1/agents"), needs(Role::Admin, true));
        assert_eq!(
            policy(&Method::PUT, "/api/v1/agents/a"),
            needs(Role::Admin, true)
        );
        assert_eq!(
            policy(&post, "/api/v1/agentsX"),
            needs(Role::Operator, true)
        );
        assert_eq!(
            policy(&post, "/api/sf/get_overview"),
            needs(Role::Viewer, false)
        );
        assert_eq!(
            policy(&post, "/api/sf/cancel_session"),
            needs(Role::Operator, true)
        );
        assert_eq!(
            policy(&post, "/api/sf/save_agent"),
            needs(Role::Admin, true)
        );
        assert_eq!(policy(&post, "/api/sf/unknown"), needs(Role::Admin, true));
        assert_eq!(policy(&post, "/anything-else"), needs(Role::Admin, true));
        for public in ["/login", "/healthz", "/readyz", "/metrics", "/pkg/oio.js"] {
            assert_eq!(policy(&get, public), Access::Public, "{public}");
        }
    }

    #[test]
    fn next_is_only_ever_a_local_path() {
        assert_eq!(
            safe_next(Some("/sessions?status=running")),
            "/sessions?status=running"
        );
        for bad in [
            "//evil.example",
            "https://evil.example",
            "evil",
            "/\\evil",
            // Browsers drop tabs and newlines: each of these would become `//evil.example`.
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "/ /evil.example",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer oio_x"),
        );
        assert_eq!(bearer(&headers), Some("oio_x"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic eA=="),
        );
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn our_cookies_are_http_only_strict_site_wide_with_a_max_age_and_secure_when_asked() {
        let plain = our_cookie(
            SESSION_COOKIE,
            "abc".into(),
            Duration::from_secs(7200),
            false,
        )
        .to_string();
        assert_eq!(
            plain,
            "oio_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=7200"
        );
        let secure = our_cookie(LOGIN_CSRF_COOKIE, "x".into(), LOGIN_FORM_TTL, true).to_string();
        assert!(secure.contains("; Secure"), "{secure}");
        let removed = removal(SESSION_COOKIE, true).to_string();
        assert!(
            removed.starts_with("oio_session=;")
                && removed.contains("Path=/")
                && removed.contains("Max-Age=0")
                && removed.contains("Secure"),
            "{removed}"
        );
    }

    #[test]
    fn origin_must_name_the_addressed_host() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:3000"));
        assert!(
            same_origin(&headers),
            "no Origin: not a cross-site browser request"
        );
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:3000"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&headers));
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
