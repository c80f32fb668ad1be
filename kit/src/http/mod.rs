//! The HTTP side every service shares: a route table whose entries carry
//! their metric names, the probes (`/healthz`, `/readyz`, `/metrics`),
//! `/version`, a plain 404 for anything else, and the layers around every
//! answer (security headers, timing).

mod headers;
mod server;
mod timing;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::handler::Handler;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;
use tower::ServiceBuilder;

pub use server::{serve, BODY_READ_TIMEOUT};

use crate::demo::DelayRange;

/// The probes' paths (and `/version`, which tools ask alike): never delayed by `DEMO_DELAY`, so a slow replica
/// stays in rotation and is watched as usual.
const PROBES: &[&str] = &[
    "/healthz",
    "/readyz",
    "/readyz/disable",
    "/readyz/enable",
    "/metrics",
    "/version",
];

/// A service's routes, each with the name its requests are timed under
/// (`route` label of `<service>_http_request_duration_seconds`; the names
/// Rocket gave its routes, which dashboards select on).
pub struct Routes<S> {
    router: Router<S>,
    names: Vec<timing::Named>,
    /// `DEMO_DELAY`, when set.
    delay: Option<DelayRange>,
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
            delay: None,
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

    /// `GET /readyz` answered by `handler`, and its switch: `POST
    /// /readyz/disable` makes `readiness` answer 503 (out of rotation),
    /// `POST /readyz/enable` lets it answer as the service's state says.
    /// The switches, like every probe, are on the replica's own port only:
    /// the edge refuses them.
    pub fn readyz<H: Handler<T, S>, T: 'static>(self, handler: H, readiness: &Readiness) -> Self {
        let (off, on) = (readiness.switch.clone(), readiness.switch.clone());
        self.get("readyz", "/readyz", handler)
            .post("readyz_disable", "/readyz/disable", move || {
                flip(off, false)
            })
            .post("readyz_enable", "/readyz/enable", move || flip(on, true))
    }

    /// Every request but the probes waits a random time in `delay` first
    /// (`DEMO_DELAY`); `None` adds nothing, not even a layer.
    pub fn demo_delay(mut self, delay: Option<DelayRange>) -> Self {
        self.delay = delay;
        self
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
        let mut router = this
            .router
            // A method a path does not take is as unknown as the path.
            .method_not_allowed_fallback(not_found.clone())
            .fallback(not_found)
            .with_state(state);
        if let Some(delay) = this.delay {
            tracing::warn!("demo fault: every request but the probes waits {delay} (DEMO_DELAY)");
            // Inside the timing layer: the delay shows in the request
            // durations, as a slow replica's would.
            router = router.layer(axum::middleware::from_fn_with_state(delay, delayed));
        }
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

/// Which build this is: `{"commit","service","version"}` (see
/// [`crate::version`]). On the service's own port only, like the probes:
/// the edge does not pass it on, since a version tells an attacker which
/// known bugs to try.
async fn version(service: &'static str) -> Response {
    let kind = HeaderValue::from_static("application/json");
    ([(CONTENT_TYPE, kind)], crate::version::json(service)).into_response()
}

/// Waits a draw of `delay` before passing the request on, unless it is
/// for a probe.
async fn delayed(
    axum::extract::State(delay): axum::extract::State<DelayRange>,
    request: Request,
    next: Next,
) -> Response {
    if !PROBES.contains(&request.uri().path()) {
        delay.wait().await;
    }
    next.run(request).await
}

/// The readiness switch set to `on`, logged when it changes.
async fn flip(switch: Arc<AtomicBool>, on: bool) -> &'static str {
    if switch.swap(on, Ordering::Relaxed) != on {
        tracing::warn!(
            "readiness switched {} by POST /readyz/{}",
            if on { "on" } else { "off" },
            if on { "enable" } else { "disable" }
        );
    }
    if on {
        "enabled: /readyz answers as the service's state says\n"
    } else {
        "disabled: /readyz answers 503 until POST /readyz/enable\n"
    }
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
/// An operator's switch ([`Routes::readyz`]) overrides the state: while
/// it is off, the answer is 503 whatever the stores say.
pub struct Readiness {
    /// Why it was not ready at the last answer; `None` while ready.
    why_not: Mutex<Option<String>>,
    /// Off after `POST /readyz/disable` (or from the start with
    /// `DEMO_START_NOT_READY`), until `POST /readyz/enable`.
    switch: Arc<AtomicBool>,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness::new(true)
    }
}

impl Readiness {
    /// With the switch on, or off until `POST /readyz/enable`.
    pub fn new(switched_on: bool) -> Readiness {
        Readiness {
            why_not: Mutex::new(None),
            switch: Arc::new(AtomicBool::new(switched_on)),
        }
    }

    /// The answer for the state `now` (`Err` says why it is not ready).
    pub fn answer(&self, now: Result<(), String>) -> Response {
        let now = if self.switch.load(Ordering::Relaxed) {
            now
        } else {
            Err("switched off (POST /readyz/enable switches it on)".into())
        };
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
