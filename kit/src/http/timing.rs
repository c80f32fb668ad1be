//! Every answer's duration into `<service>_http_request_duration_seconds`,
//! labelled by route name and status class. The route is looked up by
//! method and path in the one route table ([`super::Routes`], where each is
//! declared with its name); anything else is `unmatched`. Every route is a
//! fixed path, so an exact match finds the route axum takes; a route with
//! path parameters would need axum's `MatchedPath`, which is only seen
//! inside the router (see `App::into_service` for why this layer is not).
//!
//! A tower layer of its own rather than `middleware::from_fn`, which would
//! box a future per request; the histogram handles are looked up once per
//! route and status class, not per request.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::http::{Method, Request};
use axum::response::Response;
use metrics::Histogram;

/// The name of every request no route took: a 404.
pub const UNMATCHED: &str = "unmatched";

/// One entry of the route table: `method path` is timed as `name`.
pub struct Named {
    pub method: Method,
    pub path: &'static str,
    pub name: &'static str,
}

/// What every copy of the layer shares.
struct Table {
    metric: String,
    routes: Vec<Named>,
    /// By route index (the last is [`UNMATCHED`]) and status hundreds (5 and
    /// more as 5), registered the first time a request needs one: only what
    /// happened shows in `/metrics`.
    histograms: Vec<[OnceLock<Histogram>; 6]>,
}

impl Table {
    /// The index of the route that takes the request; HEAD is timed as GET.
    fn route<B>(&self, request: &Request<B>) -> usize {
        let method = match request.method() {
            &Method::HEAD => &Method::GET,
            method => method,
        };
        let path = request.uri().path();
        self.routes
            .iter()
            .position(|r| r.path == path && r.method == method)
            .unwrap_or(self.routes.len())
    }

    fn record(&self, route: usize, status: u16, started: Instant) {
        self.histograms[route][usize::from(status / 100).min(5)]
            .get_or_init(|| {
                let name = self.routes.get(route).map_or(UNMATCHED, |r| r.name);
                let class = crate::metrics::status_class(status);
                metrics::histogram!(self.metric.clone(), "route" => name, "status" => class)
            })
            .record(started.elapsed().as_secs_f64());
    }
}

#[derive(Clone)]
pub struct Layer(Arc<Table>);

impl Layer {
    pub fn new(metric: String, routes: Vec<Named>) -> Layer {
        let histograms = (0..=routes.len())
            .map(|_| std::array::from_fn(|_| OnceLock::new()))
            .collect();
        Layer(Arc::new(Table {
            metric,
            routes,
            histograms,
        }))
    }
}

impl<S> tower::Layer<S> for Layer {
    type Service = Timed<S>;

    fn layer(&self, inner: S) -> Timed<S> {
        Timed {
            inner,
            table: Arc::clone(&self.0),
        }
    }
}

#[derive(Clone)]
pub struct Timed<S> {
    inner: S,
    table: Arc<Table>,
}

impl<S, B> tower::Service<Request<B>> for Timed<S>
where
    S: tower::Service<Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        Answer {
            route: self.table.route(&request),
            started: Instant::now(),
            table: Arc::clone(&self.table),
            answer: self.inner.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// The route's answer, timed.
    pub struct Answer<F> {
        route: usize,
        started: Instant,
        table: Arc<Table>,
        #[pin]
        answer: F,
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Answer<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = ready!(this.answer.poll(cx));
        this.table
            .record(*this.route, response.status().as_u16(), *this.started);
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::super::headers::Headers;
    use super::super::{not_found, Routes};
    use axum::body::Body;
    use axum::http::StatusCode;
    use tower::ServiceExt as _;

    use super::*;

    /// Each test has its own metric, so tests running at once in one
    /// process (one recorder) do not see each other's requests.
    fn router(service: &'static str) -> Timed<Headers<axum::Router>> {
        crate::metrics::Metrics::install("kit");
        Routes::new()
            .get("page", "/", || async { "page" })
            .post("vote", "/", || async { "vote" })
            .get("socket", "/ws", || async { "ws" })
            .finish((), service, not_found)
            .into_service()
    }

    async fn answer(
        router: &Timed<Headers<axum::Router>>,
        method: &Method,
        path: &str,
    ) -> Response {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        router.clone().oneshot(request).await.unwrap()
    }

    fn count(metric: &str, route: &str, class: &str) -> usize {
        let text = crate::metrics::Metrics::installed().unwrap().render();
        let line = format!("{metric}_count{{route=\"{route}\",status=\"{class}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&line))
            .map_or(0, |n| n.parse().unwrap())
    }

    /// The names the timer gives agree with the routes that answer, and
    /// every answer, a 404 too, carries the security headers.
    #[tokio::test]
    async fn every_route_has_its_name_and_only_404s_are_unmatched() {
        let router = router("kit_names_test");
        let metric = "kit_names_test_http_request_duration_seconds";
        let cases = [
            (Method::GET, "/", "page"),
            (Method::HEAD, "/", "page"),
            (Method::POST, "/", "vote"),
            (Method::GET, "/healthz", "healthz"),
            (Method::GET, "/metrics", "metrics"),
            (Method::GET, "/ws", "socket"),
            (Method::DELETE, "/", UNMATCHED),
            (Method::PUT, "/", UNMATCHED),
            (Method::POST, "/healthz", UNMATCHED),
            (Method::GET, "/healthz/", UNMATCHED),
            (Method::GET, "/nowhere", UNMATCHED),
        ];
        for (method, path, name) in cases {
            let class = if name == UNMATCHED { "4xx" } else { "2xx" };
            let before = count(metric, name, class);
            let answer = answer(&router, &method, path).await;
            let not_found = answer.status() == StatusCode::NOT_FOUND;
            assert_eq!(not_found, name == UNMATCHED, "{method} {path}");
            assert_eq!(count(metric, name, class), before + 1, "{method} {path}");
            let headers = answer.headers();
            assert_eq!(headers["x-frame-options"], "SAMEORIGIN", "{method} {path}");
        }
    }

    /// Exactly the headers and values of Rocket 0.5's `Shield::default()`,
    /// replacing one a route set.
    #[tokio::test]
    async fn the_headers_are_those_of_rockets_default_shield() {
        let router = Routes::new()
            .get("framed", "/", || async {
                ([(axum::http::header::X_FRAME_OPTIONS, "DENY")], "framed")
            })
            .finish((), "kit_headers_test", not_found)
            .into_service();
        for path in ["/", "/nowhere"] {
            let answer = answer(&router, &Method::GET, path).await;
            let mut set: Vec<(&str, &str)> = answer
                .headers()
                .iter()
                .filter(|(name, _)| *name != "content-type" && *name != "content-length")
                .map(|(name, value)| (name.as_str(), value.to_str().unwrap()))
                .collect();
            set.sort();
            assert_eq!(
                set,
                [
                    ("permissions-policy", "interest-cohort=()"),
                    ("x-content-type-options", "nosniff"),
                    ("x-frame-options", "SAMEORIGIN"),
                ],
                "{path}"
            );
        }
    }
}
