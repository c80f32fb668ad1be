//! The HTTP side every service shares: a route table whose entries carry
//! their metric names, the probes (`/healthz`, `/readyz`, `/metrics`),
//! `/version`, a plain 404 for anything else, and the layers around every
//! answer (security headers, timing).

mod headers;
mod server;
mod timing;

use std::sync::Mutex;

use axum::handler::Handler;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;
use tower::ServiceBuilder;

pub use server::{serve, BODY_READ_TIMEOUT};

/// A service's routes, each with the name its requests are timed under
/// (`route` label of `<service>_http_request_duration_seconds`; the names
/// Rocket gave its routes, which dashboards select on).
pub struct Routes<S> {
    router: Router<S>,
    names: Vec<timing::Named>,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Routes::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    /// The probes every service has: `/healthz` (200 while the process
    /// serves) and `/metrics`; each service adds its own `/readyz`.
    pub fn new() -> Self {
        Routes {
            router: Router::new(),
            names: Vec::new(),
        }
        .get("healthz", "/healthz", healthz)
        .get("metrics", "/metrics", metrics)
    }

    /// `GET path` (and `HEAD`), timed as `name`.
    pub fn get<H: Handler<T, S>, T: 'static>(
        self,
        name: &'static str,
        path: &'static str,
        handler: H,
    ) -> Self {
        self.route(name, Method::GET, path, handler)
    }

    /// `POST path`, timed as `name`.
    pub fn post<H: Handler<T, S>, T: 'static>(
        self,
        name: &'static str,
        path: &'static str,
        handler: H,
    ) -> Self {
        self.route(name, Method::POST, path, handler)
    }

    fn route<H: Handler<T, S>, T: 'static>(
        mut self,
        name: &'static str,
        method: Method,
        path: &'static str,
        handler: H,
    ) -> Self {
        let filter = MethodFilter::try_from(method.clone()).expect("GET or POST");
        self.router = self.router.route(path, on(filter, handler));
        self.names.push(timing::Named { method, path, name });
        self
    }

    /// The service: these routes and `/version` with `state`; any other
    /// path or method answered by `not_found` (no log line, so a scanner
    /// cannot flood the log); every answer timed into
    /// `<service>_http_request_duration_seconds` and carrying the security
    /// headers.
    pub fn finish<H: Handler<T, S>, T: 'static>(
        self,
        state: S,
        service: &'static str,
        not_found: H,
    ) -> App {
        let this = self.get("version", "/version", move || version(service));
        let router = this
            .router
            // A method a path does not take is as unknown as the path.
            .method_not_allowed_fallback(not_found.clone())
            .fallback(not_found)
            .with_state(state);
        let timing = timing::Layer::new(
            format!("{service}_http_request_duration_seconds"),
            this.names,
        );
        App {
            router,
            timing,
            service,
        }
    }
}

/// A service's routes, ready to [`serve`].
#[derive(Clone)]
pub struct App {
    router: Router,
    timing: timing::Layer,
    /// Its metrics' prefix: `vote`, `result`, `worker`.
    service: &'static str,
}

impl App {
    /// The router inside the timing and the security headers. They wrap
    /// the router as a whole, not each route (`Router::layer`), which would
    /// box every route's service a second time and cost each request two
    /// more allocations: measured 5-10% more CPU per vote.
    pub fn into_service(self) -> timing::Timed<headers::Headers<Router>> {
        ServiceBuilder::new()
            .layer(self.timing)
            .layer(headers::layer())
            .service(self.router)
    }
}

/// Alive: answers while the process serves.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Every metric of the process, in the Prometheus text format.
async fn metrics() -> Response {
    let kind = HeaderValue::from_static(crate::metrics::CONTENT_TYPE);
    let text = crate::metrics::Metrics::installed().map_or_else(String::new, |m| m.render());
    ([(CONTENT_TYPE, kind)], text).into_response()
}

/// Which build this is: `{"service","version","commit"}` (see
/// [`crate::version`]). On the service's own port only, like the probes:
/// the edge does not pass it on, since a version tells an attacker which
/// known bugs to try.
async fn version(service: &'static str) -> Response {
    let kind = HeaderValue::from_static("application/json");
    ([(CONTENT_TYPE, kind)], crate::version::json(service)).into_response()
}

/// The 404 of a service without a page of its own: plain text.
pub async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found\n")
}

/// A service's `/readyz`: 200 `ready` or 503 `not ready`, and nothing
/// more, since anyone who reaches the service may ask (an error text can
/// name hosts, users, versions). Why it is not ready goes to the log
/// instead: one line each time the reason changes and one when it is ready
/// again, not one per request (the edge asks every 0.5-2 s).
#[derive(Default)]
pub struct Readiness {
    /// Why it was not ready at the last answer; `None` while ready.
    why_not: Mutex<Option<String>>,
}

impl Readiness {
    /// The answer for the state `now` (`Err` says why it is not ready).
    pub fn answer(&self, now: Result<(), String>) -> Response {
        let mut last = self.why_not.lock().unwrap_or_else(|p| p.into_inner());
        match now {
            Ok(()) => {
                if last.take().is_some() {
                    tracing::info!("ready");
                }
                (StatusCode::OK, "ready\n").into_response()
            }
            Err(why) => {
                if last.as_deref() != Some(why.as_str()) {
                    tracing::warn!("not ready: {why}");
                    *last = Some(why);
                }
                (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
            }
        }
    }
}
