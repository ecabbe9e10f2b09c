//! The HTTP API: what a billing or service-desk system pushes (tickets opened and closed,
//! callbacks, payments and their reversals) and the owner-facing survey answer.
//!
//! Built by [`router`] from an [`AppState`], so tests call it in-process with no socket and the
//! daemon serves the very same router with [`serve`]. Choices worth knowing:
//! - **Bearer tokens from config** (`[http] tokens = [...]`, see [`ApiToken`]), each limited to
//!   some communities. Tokens are compared as SHA-256 digests in constant time, every configured
//!   token checked, so timing tells an attacker nothing about how close a guess was.
//! - **Errors name the field**: `{"error": {"field": "amount_fen", "message": "..."}}`. Bodies
//!   are read with `serde_path_to_error`, so a wrong type deep in a body still names its path.
//!   400 unreadable JSON, 401 no/bad token, 403 token not for this community, 404 unknown
//!   community/ticket/payment/survey, 409 contradicts what is stored, 413 body over
//!   [`MAX_BODY_BYTES`], 415 not JSON, 422 a field is wrong.
//! - **Each change emits its domain event in the same transaction** (see
//!   [`wuye_store::domain`]), so the scheduler never misses a closed ticket or a payment.
//! - Writes are idempotent where a retry is likely: the same ticket or payment posted twice
//!   returns the stored one with 200 instead of 201.
//! - `GET /survey/{token}` is the page behind an invitation link: a plain HTML form in the
//!   household's language that posts to the same place (see `survey_page`); `GET /rsvp/{token}`
//!   the same for an event announcement's RSVP link (`rsvp_page`).
//! - Community events (`community_events`) and payment plans (`payment_plans`) are recorded by
//!   the desk and reach the workflows as domain events.
//! - `GET /metrics` is for Prometheus (see [`wuye_metrics`]). With `[http] public_listen`,
//!   the owner pages ([`owner_router`]) are served there and the rest ([`api_router`]) on
//!   `listen` only, so the API can stay private while the pages face the internet.
//! - `GET /api/v1/openapi.json` describes all of this (OpenAPI 3.0, hand-written in
//!   `openapi.json` next to this file). The routers are built from one route table that the
//!   tests compare with the document both ways (method and path), the document is parsed as
//!   OpenAPI 3.0, and every response the HTTP tests receive is checked against its schemas.
//! - **Every listener is bounded** (`listener`): a header timeout, a whole-request timeout (408,
//!   see `time_limit`) and a connection limit (503 with `Retry-After`), from `[http]`.
//! - **SIGHUP swaps who may call and which communities exist** ([`HttpReload`]): tokens and
//!   communities live in one `Access` value replaced whole, so a request sees the old or the
//!   new configuration, never half of each; listeners and limits change at the next restart.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{DomainError, FeeType, Period, SurveyScores, TicketKind, fmt_ts, parse_ts};
use wuye_core::clock::SharedClock;
use wuye_store::domain::{CallbackInput, DomainRead, PaymentInput, TicketInput, with_tx};

use listener::serve_limited;
pub use listener::{HttpLimits, RETRY_AFTER_SECS};
/// Configuration, checked by `wuyed check` with the rule the API applies as it starts.
pub use wuye_config::http::{ApiToken, check_token};

/// Largest request body accepted (a ticket with a long summary fits many times over).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A token ready for checking: only its digest is kept in memory.
#[derive(Clone)]
pub struct ResolvedToken {
    pub name: String,
    digest: [u8; 32],
    communities: Vec<String>,
}

impl ResolvedToken {
    pub fn new(name: impl Into<String>, secret: &str, communities: Vec<String>) -> Self {
        ResolvedToken {
            name: name.into(),
            digest: Sha256::digest(secret.as_bytes()).into(),
            communities,
        }
    }

    fn allows(&self, community: &str) -> bool {
        self.communities.iter().any(|c| c == "*" || c == community)
    }
}

/// Resolves configured tokens (env, file, inline); errors name the token, never its value.
pub fn resolve_tokens(
    tokens: &[ApiToken],
    config_dir: &std::path::Path,
) -> Result<Vec<ResolvedToken>, String> {
    tokens
        .iter()
        .map(|t| {
            let secret = t
                .token
                .resolve(config_dir)
                .map_err(|e| format!("http.tokens {:?}: {e}", t.name))?;
            check_token(secret.expose()).map_err(|e| format!("http.tokens {:?}: {e}", t.name))?;
            Ok(ResolvedToken::new(
                &t.name,
                secret.expose(),
                t.communities.clone(),
            ))
        })
        .collect()
}

/// Everything a request needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    // One connection behind a mutex: SQLite takes one writer at a time anyway, and the API's
    // load (a desk's clicks, a billing batch) is far below what one connection serves.
    db: Mutex<Connection>,
    /// Replaced whole by a reload ([`HttpReload`]); each request takes the current one once.
    access: RwLock<Arc<Access>>,
    clock: SharedClock,
    /// Told after every successful database call, so the daemon routes the domain events a
    /// write may have emitted at once instead of polling for them.
    written: Option<Arc<tokio::sync::Notify>>,
    /// `http.request_timeout`: past it a request is answered 408 ([`time_limit`]).
    request_timeout: Duration,
    /// The outbox dispatcher's heartbeat, when it runs beside the API (`wuyed run`): part of
    /// `/healthz`, so a monitor learns that nothing is being sent.
    dispatcher: Option<wuye_deliver::DispatcherHealth>,
}

/// What the configuration says about who may call and for which communities: the part of the
/// state a SIGHUP replaces.
struct Access {
    tokens: Vec<ResolvedToken>,
    communities: HashSet<String>,
    /// Each community's timezone, for pages that show owners a local time (Asia/Shanghai
    /// when not given).
    zones: std::collections::HashMap<String, chrono_tz::Tz>,
}

impl AppState {
    /// `conn` must have the domain schema; `communities` are the configured ids.
    pub fn new(
        conn: Connection,
        tokens: Vec<ResolvedToken>,
        communities: impl IntoIterator<Item = String>,
        clock: SharedClock,
    ) -> Self {
        AppState {
            inner: Arc::new(Inner {
                db: Mutex::new(conn),
                access: RwLock::new(Arc::new(Access {
                    tokens,
                    communities: communities.into_iter().collect(),
                    zones: Default::default(),
                })),
                clock,
                written: None,
                request_timeout: HttpLimits::DEFAULT.request_timeout,
                dispatcher: None,
            }),
        }
    }

    /// The communities' timezones (see `Access::zones`).
    pub fn with_zones(self, zones: impl IntoIterator<Item = (String, chrono_tz::Tz)>) -> Self {
        let access = self.access();
        self.set_access(Access {
            tokens: access.tokens.clone(),
            communities: access.communities.clone(),
            zones: zones.into_iter().collect(),
        });
        self
    }

    /// Answers 408 to requests taking longer than `limit` (see `time_limit`).
    pub fn with_request_timeout(mut self, limit: Duration) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.request_timeout = limit,
            None => unreachable!("with_request_timeout is called before the state is shared"),
        }
        self
    }

    /// The tokens and communities in force now.
    fn access(&self) -> Arc<Access> {
        // A panic never happens while the lock is held (it only swaps an Arc), so a poisoned
        // lock still holds a whole value.
        self.inner
            .access
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_access(&self, access: Access) {
        *self.inner.access.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(access);
    }

    fn zone(&self, community: &str) -> chrono_tz::Tz {
        self.access()
            .zones
            .get(community)
            .copied()
            .unwrap_or(chrono_tz::Asia::Shanghai)
    }

    /// Notifies `written` after every successful database call (see `Inner::written`).
    pub fn notify_writes(mut self, written: Arc<tokio::sync::Notify>) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.written = Some(written),
            None => unreachable!("notify_writes is called before the state is shared"),
        }
        self
    }

    /// Makes `/healthz` report the dispatcher's heartbeat (503 while it is down or stuck).
    pub fn with_dispatcher(mut self, health: wuye_deliver::DispatcherHealth) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.dispatcher = Some(health),
            None => unreachable!("with_dispatcher is called before the state is shared"),
        }
        self
    }

    /// The state the daemon serves: tokens from `[http] tokens` (resolved now, so a missing
    /// env var or secret file is an error at start, naming the token) and the configured
    /// communities.
    pub fn from_settings(
        settings: &wuye_config::Settings,
        conn: Connection,
        clock: SharedClock,
    ) -> Result<Self, String> {
        let tokens = resolve_tokens(&settings.daemon.http.tokens, &settings.dir)?;
        let ids = settings.communities.iter().map(|c| c.id.clone());
        Ok(AppState::new(conn, tokens, ids, clock).with_zones(zones(settings)))
    }

    /// Runs `f` on the database off the async workers.
    async fn db<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, DateTime<Utc>) -> Result<R, ApiError> + Send + 'static,
    ) -> Result<R, ApiError> {
        self.on_db(f, true).await
    }

    /// [`Self::db`] for a read, which tells nobody: a scrape every few seconds must not wake the
    /// event router each time.
    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, DateTime<Utc>) -> Result<R, ApiError> + Send + 'static,
    ) -> Result<R, ApiError> {
        self.on_db(f, false).await
    }

    async fn on_db<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, DateTime<Utc>) -> Result<R, ApiError> + Send + 'static,
        wrote: bool,
    ) -> Result<R, ApiError> {
        let state = self.clone();
        // A request cut off by `http.request_timeout` drops this future, but the blocking task
        // cannot be cancelled: if it is still waiting for the connection, it must not then do
        // a write the client was told (408) did not happen.
        let abandoned = Abandoned::default();
        let gone = abandoned.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = state
                .inner
                .db
                .lock()
                .map_err(|_| ApiError::internal("database handle poisoned"))?;
            if gone.load(Ordering::SeqCst) {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    None,
                    "abandoned before it reached the database",
                ));
            }
            let now = state.inner.clock.now();
            let out = f(&mut conn, now);
            if let (Ok(_), Some(written), true) = (&out, &state.inner.written, wrote) {
                written.notify_one();
            }
            out
        })
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
    }

    /// Takes `settings`' tokens and communities for the requests that start from now on. A
    /// token that cannot be resolved (its variable or file gone since the configuration was
    /// checked) fails the whole swap: the previous tokens and communities stay.
    fn reload(&self, settings: &wuye_config::Settings) -> Result<(), String> {
        let tokens = resolve_tokens(&settings.daemon.http.tokens, &settings.dir)?;
        self.set_access(Access {
            tokens,
            communities: settings.communities.iter().map(|c| c.id.clone()).collect(),
            zones: zones(settings).into_iter().collect(),
        });
        Ok(())
    }

    fn authorize(&self, headers: &HeaderMap, community: &str) -> Result<String, ApiError> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    None,
                    "missing bearer token (Authorization: Bearer ...)",
                )
            })?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let access = self.access();
        // Check every token without stopping early, comparing digests in constant time.
        let mut found: Option<&ResolvedToken> = None;
        for t in &access.tokens {
            if constant_time_eq(&t.digest, &digest) {
                found = Some(t);
            }
        }
        let token = found
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, None, "invalid bearer token"))?;
        if !access.communities.contains(community) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                None,
                format!("community {community:?} is not configured"),
            ));
        }
        if !token.allows(community) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                None,
                format!("this token may not write to community {community:?}"),
            ));
        }
        Ok(token.name.clone())
    }
}

/// Set when the request waiting on a database call is dropped (see `AppState::on_db`).
#[derive(Default)]
struct Abandoned(Arc<AtomicBool>);

impl Drop for Abandoned {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The tokens and communities of a running server, replaced by [`HttpReload::reload`] on
/// SIGHUP; does nothing when HTTP is off. Listener addresses and limits are bound to sockets
/// and tasks already running, so a change to them is only announced, for the next restart.
#[derive(Clone, Default)]
pub struct HttpReload {
    served: Option<(AppState, wuye_config::HttpSection)>,
}

impl HttpReload {
    /// Applies `settings` (already checked by the configuration loader) and logs the outcome.
    pub fn reload(&self, settings: &wuye_config::Settings) {
        let Some((state, started)) = &self.served else {
            return;
        };
        match state.reload(settings) {
            Ok(()) => tracing::info!(
                tokens = settings.daemon.http.tokens.len(),
                communities = settings.communities.len(),
                "http tokens and communities reloaded"
            ),
            Err(e) => tracing::error!(
                "http tokens of the new configuration are unusable, the API keeps the old \
                 tokens and communities: {e}"
            ),
        }
        let now = &settings.daemon.http;
        let changed: Vec<&str> = [
            ("http.listen", started.listen != now.listen),
            (
                "http.public_listen",
                started.public_listen != now.public_listen,
            ),
            (
                "http.header_timeout",
                started.header_timeout != now.header_timeout,
            ),
            (
                "http.request_timeout",
                started.request_timeout != now.request_timeout,
            ),
            (
                "http.max_connections",
                started.max_connections != now.max_connections,
            ),
        ]
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect();
        if !changed.is_empty() {
            tracing::warn!(
                keys = %changed.join(", "),
                "http listener settings changed: they take effect at the next restart"
            );
        }
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // black_box keeps the optimiser from turning the fold into an early-exit compare.
    std::hint::black_box(diff) == 0
}

/// Everything on one router: the API and the owner pages, as served on `http.listen` when
/// `http.public_listen` is not set; call it in-process or serve it with [`serve`].
pub fn router(state: AppState) -> Router {
    finish(api_routes(&state).merge(owner_routes()), state)
}

/// What `http.listen` serves when the owner pages have a listener of their own: the bearer
/// API, `/healthz`, `/metrics` and the OpenAPI document.
pub fn api_router(state: AppState) -> Router {
    finish(api_routes(&state), state)
}

/// What `http.public_listen` serves: only the pages owners open from their links, and the
/// survey answer they post. The token in the link is the credential; nothing here takes a
/// bearer token or shows more than the one household's own page.
pub fn owner_router(state: AppState) -> Router {
    finish(owner_routes(), state)
}

/// One route: the routers are built from the tables below and nowhere else, and the OpenAPI
/// test (`tests/openapi.rs`) compares these same tables with `openapi.json`, so a route cannot be
/// served undocumented, nor documented with a method it does not answer.
struct Route {
    // Routed through `endpoint`; kept to be read back by the OpenAPI test.
    #[cfg_attr(not(test), allow(dead_code))]
    method: Method,
    path: &'static str,
    endpoint: MethodRouter<AppState>,
}

/// `handler` answering `method` at `path`; the method router is made from `method` itself, so
/// the table cannot name one method and route another.
fn at<H, T>(method: Method, path: &'static str, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a method axum routes");
    Route {
        method,
        path,
        endpoint: on(filter, handler),
    }
}

/// Where the routes of `community_table` are nested.
const COMMUNITY_API: &str = "/api/v1/communities/{community}";

/// The owner pages and the survey answer: the token in the link is the credential.
fn owner_table() -> Vec<Route> {
    vec![
        at(
            Method::POST,
            "/api/v1/surveys/{token}/responses",
            answer_survey,
        ),
        at(Method::GET, "/survey/{token}", survey_page::show),
        at(Method::POST, "/survey/{token}", survey_page::submit),
        at(Method::GET, "/rsvp/{token}", rsvp_page::show),
        at(Method::POST, "/rsvp/{token}", rsvp_page::submit),
    ]
}

/// What `http.listen` answers without a token.
fn open_table() -> Vec<Route> {
    vec![
        at(Method::GET, "/healthz", healthz),
        at(Method::GET, "/metrics", metrics),
        at(Method::GET, "/api/v1/openapi.json", openapi),
    ]
}

/// One community's data, under `COMMUNITY_API`, each request behind a bearer token for it.
fn community_table() -> Vec<Route> {
    vec![
        at(Method::POST, "/tickets", open_ticket),
        at(Method::POST, "/tickets/{no}/close", close_ticket),
        at(Method::POST, "/tickets/{no}/callback", record_callback),
        at(Method::POST, "/payments", post_payment),
        at(
            Method::POST,
            "/payments/{reference}/reverse",
            reverse_payment,
        ),
        at(Method::PUT, "/events/{key}", community_events::plan),
        at(Method::POST, "/events/{key}/rsvps", community_events::rsvp),
        at(
            Method::POST,
            "/events/{key}/summary",
            community_events::summary,
        ),
        at(Method::POST, "/payment-plans", payment_plans::agree),
        at(
            Method::POST,
            "/payment-plans/{household}/end",
            payment_plans::end,
        ),
    ]
}

/// A router of `table`'s routes (two methods on one path merge into one route).
fn routes_of(table: Vec<Route>) -> Router<AppState> {
    table.into_iter().fold(Router::new(), |r, route| {
        r.route(route.path, route.endpoint)
    })
}

fn owner_routes() -> Router<AppState> {
    routes_of(owner_table())
}

fn api_routes(state: &AppState) -> Router<AppState> {
    let community_api = routes_of(community_table())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    routes_of(open_table()).nest(COMMUNITY_API, community_api)
}

/// The parts every listener shares: JSON errors for unknown routes and methods, the body limit,
/// and a count of every request answered (by route template, see [`wuye_metrics`]).
fn finish(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, None, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                None,
                "method not allowed on this endpoint",
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), time_limit))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(count_request))
        .with_state(state)
}

/// `http.request_timeout` over the whole request once its headers are in: reading the body (a
/// client trickling it byte by byte) and the handler. The answer is 408 in the API's JSON
/// shape, counted by [`count_request`] like any other; the connection is closed, since the
/// rest of the body may still be on its way. A database call not yet started is not made
/// (`AppState::on_db`), so a retry after 408 is the only attempt that counts.
async fn time_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.inner.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                None,
                format!(
                    "the request took longer than {} s: send the body at once and retry",
                    limit.as_secs()
                ),
            )
            .into_response();
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            response
        }
    }
}

/// Counts each answered request under its route template, so a token in a path never becomes
/// a label. `Router::layer` wraps each route, where the matched template is known; requests
/// no route matched have none.
async fn count_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string());
    let response = next.run(request).await;
    wuye_metrics::http_answered(&method, route.as_deref(), response.status().as_u16());
    response
}

/// Serves the API on `listener` within the default [`HttpLimits`] until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let limits = HttpLimits::DEFAULT;
    let app = router(state.with_request_timeout(limits.request_timeout));
    serve_limited("http.listen", listener, app, limits, stop_rx).await
}

/// What [`start`] serves: the address of `listen` (useful with port 0; that of `public_listen`
/// when only it is set), one task serving every listener, which ends when the shutdown future
/// resolves, and the handle a SIGHUP reloads tokens and communities through.
pub struct Serving {
    pub addr: std::net::SocketAddr,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    pub reload: HttpReload,
}

impl HttpReload {
    /// The reload handle of what [`start`] returned; one that does nothing when HTTP is off.
    pub fn of(serving: Option<&Serving>) -> HttpReload {
        serving.map(|s| s.reload.clone()).unwrap_or_default()
    }
}

/// Starts the API the way the daemon runs it: `[http] listen` (empty: disabled) and, when set,
/// `[http] public_listen` for the owner pages alone (then `listen` serves everything else and
/// no owner page), each within `[http]`'s [`HttpLimits`]; `Ok(None)` when both are empty.
/// Tokens and limits are checked now (a missing variable or secret file, a bad timeout, is a
/// config error, exit 78, naming the key), the database is `<data_dir>/wuye.db`.
pub async fn start(
    settings: &wuye_config::Settings,
    clock: SharedClock,
    written: Option<Arc<tokio::sync::Notify>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Option<Serving>> {
    use anyhow::Context as _;
    let listen = settings.daemon.http.listen.trim();
    let public = settings.daemon.http.public_listen.trim();
    if listen.is_empty() && public.is_empty() {
        return Ok(None);
    }
    let tokens = resolve_tokens(&settings.daemon.http.tokens, &settings.dir)
        .map_err(|e| wuye_core::exit::Coded::config(anyhow::anyhow!(e)))?;
    let limits = HttpLimits::from_section(&settings.daemon.http).map_err(|errors| {
        let text: Vec<String> = errors.iter().map(|(k, m)| format!("{k}: {m}")).collect();
        wuye_core::exit::Coded::config(anyhow::anyhow!(text.join("; ")))
    })?;
    // Store::open_in migrates the schema (and refuses a newer one) exactly as `wuyed run` does;
    // the API then keeps its own connection, so a request never waits behind a run holding the
    // daemon's (two connections on one WAL file are safe: see store).
    let store = wuye_store::Store::open_in(&settings.data_dir)?;
    let conn = wuye_store::domain::open_standalone(store.path())
        .with_context(|| format!("cannot open {}", store.path().display()))
        .map_err(wuye_core::exit::Coded::temporary)?;
    drop(store);
    let ids = settings.communities.iter().map(|c| c.id.clone());
    let mut state = AppState::new(conn, tokens, ids, clock)
        .with_zones(zones(settings))
        .with_request_timeout(limits.request_timeout);
    if let Some(written) = written {
        state = state.notify_writes(written);
    }
    if let Some(health) = wuye_deliver::supervise::published() {
        state = state.with_dispatcher(health);
    }
    // Each listener with what it serves: everything on `listen` unless the owner pages have
    // their own.
    let reload = HttpReload {
        served: Some((state.clone(), settings.daemon.http.clone())),
    };
    let mut served = Vec::new();
    if public.is_empty() {
        served.push(("http.listen", listen, router(state)));
    } else {
        if !listen.is_empty() {
            served.push(("http.listen", listen, api_router(state.clone())));
        }
        served.push(("http.public_listen", public, owner_router(state)));
    }
    // Both stop on the one shutdown signal.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut first = None;
    let mut servers = tokio::task::JoinSet::new();
    for (key, address, app) in served {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("{key}: cannot listen on {address}"))
            .map_err(wuye_core::exit::Coded::temporary)?;
        let addr = listener.local_addr()?;
        if key == "http.listen" {
            tracing::info!(%addr, owner_pages = public.is_empty(), "http api listening");
        } else {
            tracing::info!(%addr, "owner pages listening");
        }
        first.get_or_insert(addr);
        servers.spawn(serve_limited(key, listener, app, limits, stop_rx.clone()));
    }
    let task = tokio::spawn(async move {
        // Ends once every listener has stopped, with the error of one that failed, if any.
        let mut result = Ok(());
        while let Some(done) = servers.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(e) => result = Err(std::io::Error::other(e)),
            }
        }
        result
    });
    Ok(first.map(|addr| Serving { addr, task, reload }))
}

fn zones(settings: &wuye_config::Settings) -> Vec<(String, chrono_tz::Tz)> {
    settings
        .communities
        .iter()
        .map(|c| (c.id.clone(), c.tz))
        .collect()
}

async fn require_token(
    State(state): State<AppState>,
    Path(params): Path<Vec<(String, String)>>,
    request: Request,
    next: Next,
) -> Response {
    let community = params
        .iter()
        .find(|(k, _)| k == "community")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    match state.authorize(request.headers(), &community) {
        Ok(name) => {
            tracing::debug!(token = %name, community = %community, "api request");
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

// ----- errors -----

/// A JSON error: `{"error": {"field": "...", "message": "..."}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    field: Option<String>,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, field: Option<&str>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            field: field.map(str::to_string),
            message: message.into(),
        }
    }
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, Some(field), message)
    }
    fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!(%message, "api internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(serde_json::json!({
                "error": {"field": self.field, "message": self.message}
            })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        // A 503 is always "try again later" here (the database held by another writer): say
        // when, as the listener's own 503 does, so a client backs off instead of hammering.
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(RETRY_AFTER_SECS),
            );
        }
        res
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotFound { what, key } => ApiError::new(
                StatusCode::NOT_FOUND,
                None,
                format!("{what} {key:?} not found"),
            ),
            DomainError::Conflict { field, message } => {
                ApiError::new(StatusCode::CONFLICT, field, message)
            }
            DomainError::Invalid { field, message } => ApiError::invalid(field, message),
            DomainError::Sql(e) => e.into(),
        }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        // Another process held the write lock past the request's wait (store/lock.rs): nothing
        // was written, and the same request succeeds later.
        if wuye_store::lock::is_lock_conflict(&e) {
            tracing::warn!(error = %e, "api write gave up waiting for the database lock");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "the database is held by another process's write; nothing was changed, try again shortly",
            );
        }
        ApiError::internal(e.to_string())
    }
}

/// A JSON body whose errors name the field (via `serde_path_to_error`), with the JSON error
/// shape for every rejection (size, content type, syntax).
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                "expected Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rej| {
                let status = rej.status();
                let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    format!("request body is larger than {MAX_BODY_BYTES} bytes")
                } else {
                    rej.body_text()
                };
                ApiError::new(status, None, message)
            })?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize::<_, T>(de) {
            Ok(v) => Ok(Body(v)),
            Err(err) => {
                let path = err.path().to_string();
                let inner = err.into_inner();
                if inner.is_syntax() || inner.is_eof() {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        None,
                        format!("body is not valid JSON: {inner}"),
                    ));
                }
                // serde reports a missing field at the parent's path (an unknown one at its
                // own); name the field itself.
                let text = strip_position(&inner.to_string());
                let named = text
                    .strip_prefix("missing field `")
                    .and_then(|rest| rest.split('`').next())
                    .map(|f| {
                        if path == "." {
                            f.to_string()
                        } else {
                            format!("{path}.{f}")
                        }
                    });
                let field = named.unwrap_or(path);
                Err(ApiError::invalid(&field, text))
            }
        }
    }
}

/// serde_json appends " at line 1 column 20"; the field name says more to a client.
fn strip_position(s: &str) -> String {
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    }
}

fn instant(field: &str, v: Option<&str>, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    match v {
        None => Ok(now),
        Some(s) => parse_ts(s).ok_or_else(|| {
            ApiError::invalid(
                field,
                "must be an RFC 3339 time like 2026-03-01T09:30:00+08:00",
            )
        }),
    }
}

fn parsed<T: std::str::FromStr<Err = String>>(field: &str, v: &str) -> Result<T, ApiError> {
    v.parse().map_err(|m: String| ApiError::invalid(field, m))
}

fn non_empty(field: &str, v: &str) -> Result<String, ApiError> {
    let t = v.trim();
    if t.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    Ok(t.to_string())
}

// ----- handlers -----

async fn healthz(State(state): State<AppState>) -> Result<Response, ApiError> {
    state
        .read(|conn, _| {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await?;
    Ok(match state.inner.dispatcher.as_ref().map(|d| d.verdict()) {
        None => Json(serde_json::json!({"status": "ok"})).into_response(),
        Some(Ok(())) => {
            Json(serde_json::json!({"status": "ok", "dispatcher": "ok"})).into_response()
        }
        Some(Err(why)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "unavailable", "dispatcher": why})),
        )
            .into_response(),
    })
}

/// `GET /metrics`: the counters, and the outbox as the database has it now.
async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = state
        .read(|conn, now| {
            let unsettled = wuye_store::outbox::read(conn, |tx| Ok(tx.outbox_unsettled()?))
                .map_err(|e| ApiError::internal(format!("{e:#}")))?;
            Ok(wuye_metrics::encode(&unsettled, now))
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, wuye_metrics::CONTENT_TYPE)], text).into_response())
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

/// The OpenAPI 3 description served at `/api/v1/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenTicket {
    no: String,
    kind: String,
    first_receiver: String,
    household: Option<String>,
    #[serde(default)]
    summary: String,
    assignee: Option<String>,
    opened_at: Option<String>,
}

#[derive(Debug, Serialize)]
struct TicketOut {
    no: String,
    kind: TicketKind,
    household: Option<String>,
    summary: String,
    first_receiver: String,
    assignee: Option<String>,
    opened_at: String,
    assigned_at: Option<String>,
    closed_at: Option<String>,
    reopened: u32,
}

impl From<crate::domain::Ticket> for TicketOut {
    fn from(t: crate::domain::Ticket) -> Self {
        TicketOut {
            no: t.no,
            kind: t.kind,
            household: t.household,
            summary: t.summary,
            first_receiver: t.first_receiver,
            assignee: t.assignee,
            opened_at: fmt_ts(t.opened_at),
            assigned_at: t.assigned_at.map(fmt_ts),
            closed_at: t.closed_at.map(fmt_ts),
            reopened: t.reopened,
        }
    }
}

async fn open_ticket(
    State(state): State<AppState>,
    Path(community): Path<String>,
    Body(b): Body<OpenTicket>,
) -> Result<(StatusCode, Json<TicketOut>), ApiError> {
    state
        .db(move |conn, now| {
            let opened_at = instant("opened_at", b.opened_at.as_deref(), now)?;
            let input = TicketInput {
                no: non_empty("no", &b.no)?,
                household: b.household,
                kind: parsed("kind", &b.kind)?,
                summary: b.summary,
                first_receiver: non_empty("first_receiver", &b.first_receiver)?,
                assigned_at: b.assignee.as_ref().map(|_| opened_at),
                assignee: b.assignee,
                opened_at,
                closed_at: None,
            };
            let existed = DomainRead::new(conn, &community)
                .ticket_by_no(&input.no)?
                .is_some();
            let t = with_tx(conn, |tx| tx.domain(&community).open_ticket(&input, now)).map_err(
                |e| match e {
                    DomainError::NotFound {
                        what: "household", ..
                    } => ApiError::invalid("household", e.to_string()),
                    e => e.into(),
                },
            )?;
            let status = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok((status, Json(t.into())))
        })
        .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseTicket {
    closed_at: Option<String>,
    assignee: Option<String>,
}

async fn close_ticket(
    State(state): State<AppState>,
    Path((community, no)): Path<(String, String)>,
    Body(b): Body<CloseTicket>,
) -> Result<Json<TicketOut>, ApiError> {
    state
        .db(move |conn, now| {
            let closed_at = instant("closed_at", b.closed_at.as_deref(), now)?;
            let t = with_tx(conn, |tx| {
                tx.domain(&community)
                    .close_ticket(&no, closed_at, b.assignee.as_deref(), now)
            })?;
            Ok(Json(t.into()))
        })
        .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordCallback {
    done_by: String,
    satisfied: bool,
    score: u8,
    #[serde(default)]
    notes: String,
    done_at: Option<String>,
}

async fn record_callback(
    State(state): State<AppState>,
    Path((community, no)): Path<(String, String)>,
    Body(b): Body<RecordCallback>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    state
        .db(move |conn, now| {
            let input = CallbackInput {
                done_at: instant("done_at", b.done_at.as_deref(), now)?,
                done_by: non_empty("done_by", &b.done_by)?,
                satisfied: b.satisfied,
                score: b.score,
                notes: b.notes,
            };
            let out = with_tx(conn, |tx| {
                tx.domain(&community).record_callback(&no, &input, now)
            })?;
            Ok((
                StatusCode::CREATED,
                Json(serde_json::json!({
                    "ticket": no,
                    "done_at": fmt_ts(out.callback.done_at),
                    "satisfied": out.callback.satisfied,
                    "score": out.callback.score,
                    "reopened": out.reopened,
                })),
            ))
        })
        .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostPayment {
    reference: String,
    household: String,
    fee_type: String,
    period: String,
    amount_fen: i64,
    paid_at: Option<String>,
    #[serde(default)]
    method: String,
}

#[derive(Debug, Serialize)]
struct PaymentOut {
    reference: String,
    bill_id: i64,
    amount_fen: i64,
    paid_at: String,
    method: String,
    reversed_at: Option<String>,
    reversal_reason: Option<String>,
    /// Whether the bill still has money owed after this change.
    bill_unpaid: bool,
}

fn payment_out(d: &DomainRead<'_>, p: crate::domain::Payment) -> Result<PaymentOut, ApiError> {
    Ok(PaymentOut {
        bill_unpaid: d.is_bill_unpaid(p.bill_id)?.unwrap_or(false),
        reference: p.reference,
        bill_id: p.bill_id,
        amount_fen: p.amount_fen,
        paid_at: fmt_ts(p.paid_at),
        method: p.method,
        reversed_at: p.reversed_at.map(fmt_ts),
        reversal_reason: p.reversal_reason,
    })
}

async fn post_payment(
    State(state): State<AppState>,
    Path(community): Path<String>,
    Body(b): Body<PostPayment>,
) -> Result<(StatusCode, Json<PaymentOut>), ApiError> {
    state
        .db(move |conn, now| {
            if b.amount_fen <= 0 {
                return Err(ApiError::invalid(
                    "amount_fen",
                    "must be a positive integer",
                ));
            }
            let input = PaymentInput {
                reference: non_empty("reference", &b.reference)?,
                household: non_empty("household", &b.household)?,
                fee_type: parsed::<FeeType>("fee_type", &b.fee_type)?,
                period: parsed::<Period>("period", &b.period)?,
                amount_fen: b.amount_fen,
                paid_at: instant("paid_at", b.paid_at.as_deref(), now)?,
                method: b.method,
                reversed_at: None,
                reversal_reason: None,
            };
            let (p, new) = with_tx(conn, |tx| tx.domain(&community).post_payment(&input, now))?;
            let out = payment_out(&DomainRead::new(conn, &community), p)?;
            let status = if new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(out)))
        })
        .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReversePayment {
    reason: String,
}

async fn reverse_payment(
    State(state): State<AppState>,
    Path((community, reference)): Path<(String, String)>,
    Body(b): Body<ReversePayment>,
) -> Result<Json<PaymentOut>, ApiError> {
    state
        .db(move |conn, now| {
            let reason = non_empty("reason", &b.reason)?;
            let p = with_tx(conn, |tx| {
                tx.domain(&community)
                    .reverse_payment(&reference, &reason, now)
            })?;
            Ok(Json(payment_out(&DomainRead::new(conn, &community), p)?))
        })
        .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerSurvey {
    reception: Option<u8>,
    repairs: Option<u8>,
    cleaning: Option<u8>,
    security: Option<u8>,
    greenery: Option<u8>,
    #[serde(default)]
    comment: String,
}

const MAX_COMMENT_CHARS: usize = 2000;

async fn answer_survey(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Body(b): Body<AnswerSurvey>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    state
        .db(move |conn, now| {
            if b.comment.chars().count() > MAX_COMMENT_CHARS {
                return Err(ApiError::invalid(
                    "comment",
                    format!("must be at most {MAX_COMMENT_CHARS} characters"),
                ));
            }
            let scores = SurveyScores {
                reception: b.reception,
                repairs: b.repairs,
                cleaning: b.cleaning,
                security: b.security,
                greenery: b.greenery,
            };
            if crate::domain::ServiceArea::ALL
                .iter()
                .all(|a| scores.get(*a).is_none())
            {
                return Err(ApiError::invalid(
                    "reception",
                    "score at least one service area",
                ));
            }
            let r = with_tx(conn, |tx| {
                tx.record_survey_response(&token, scores, b.comment.trim(), now)
            })
            .map_err(|e| match e {
                // Do not say whether a token exists in some other form: 404 either way.
                DomainError::NotFound { .. } => ApiError::new(
                    StatusCode::NOT_FOUND,
                    None,
                    "no survey invitation with this link",
                ),
                e => e.into(),
            })?;
            Ok((
                StatusCode::CREATED,
                Json(serde_json::json!({"answered_at": fmt_ts(r.answered_at)})),
            ))
        })
        .await
}

/// The service desk's values and the store's error, under the one name the handlers use.
mod domain {
    pub use wuye_core::domain::*;
    pub use wuye_store::domain::DomainError;
}

mod community_events;
mod listener;
mod payment_plans;
mod rsvp_page;
mod survey_page;
#[cfg(test)]
mod tests;
