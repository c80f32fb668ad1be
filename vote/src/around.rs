//! What happens around every request, 404s included: the security headers
//! on its answer, and its duration into `vote_http_request_duration_seconds`
//! by route and status class (the labels Rocket's `RequestTimer` gave).
//!
//! A hyper service wrapping the router rather than an axum middleware
//! (`middleware::from_fn`), which would clone the route's boxed service and
//! box a future on every request; the histogram handles are looked up once
//! per route and status class, not per request.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;
use axum::routing::future::RouteFuture;
use axum::Router;
use metrics::Histogram;
use tower::Service as _;

const METRIC: &str = "vote_http_request_duration_seconds";

/// Each route's name in the metric: the handler's, as Rocket named routes;
/// the last, `unmatched`, for a 404.
const ROUTES: [&str; 8] = [
    "page",
    "vote",
    "healthz",
    "readyz",
    "stylesheet",
    "icon",
    "metrics",
    "unmatched",
];

/// The index in [`ROUTES`] of the route that answers `method` and `path`
/// (`routes::router` has the same table; GET routes also answer HEAD).
fn route(method: &Method, path: &str) -> usize {
    let get = *method == Method::GET || *method == Method::HEAD;
    match path {
        "/" if get => 0,
        "/" if *method == Method::POST => 1,
        "/healthz" if get => 2,
        "/readyz" if get => 3,
        "/static/vote.css" if get => 4,
        "/favicon.svg" if get => 5,
        "/metrics" if get => 6,
        _ => 7,
    }
}

/// The router, with the headers and timing around each request.
#[derive(Clone)]
pub struct Around {
    router: Router,
    histograms: Arc<Histograms>,
}

/// The histogram of each route (by index) and status (by its hundreds, 5
/// and more as 5; the label is `ballot::metrics::status_class`), registered
/// the first time a request needs it: only what happened shows in `/metrics`.
type Histograms = [[OnceLock<Histogram>; 6]; ROUTES.len()];

impl Around {
    pub fn new(router: Router) -> Around {
        let histograms = std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new()));
        Around {
            router,
            histograms: Arc::new(histograms),
        }
    }
}

impl<B> hyper::service::Service<Request<B>> for Around
where
    Router: tower::Service<
        Request<B>,
        Response = Response,
        Error = Infallible,
        Future = RouteFuture<Infallible>,
    >,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, request: Request<B>) -> Answer {
        Answer {
            route: route(request.method(), request.uri().path()),
            started: Instant::now(),
            histograms: Arc::clone(&self.histograms),
            // A router is always ready: no poll_ready needed.
            answer: self.router.clone().call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// The router's answer, finished with the headers and timed.
    pub struct Answer {
        route: usize,
        started: Instant,
        histograms: Arc<Histograms>,
        #[pin]
        answer: RouteFuture<Infallible>,
    }
}

impl Future for Answer {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut response) = ready!(this.answer.poll(cx));
        crate::shield::add_security_headers(response.headers_mut());
        let status = response.status().as_u16();
        this.histograms[*this.route][usize::from(status / 100).min(5)]
            .get_or_init(|| {
                let route = ROUTES[*this.route];
                let class = ballot::metrics::status_class(status);
                metrics::histogram!(METRIC, "route" => route, "status" => class)
            })
            .record(this.started.elapsed().as_secs_f64());
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use hyper::service::Service as _;

    fn around() -> Around {
        let options = ballot::VoteOptions::defaults();
        // Nothing listens there: Redis is only asked by /readyz and votes.
        let ballot_box = crate::BallotBox::new("redis://127.0.0.1:1").unwrap();
        let app = crate::App::new(options, "host-1".into(), ballot_box, Default::default());
        Around::new(crate::routes::router(Arc::new(app)))
    }

    async fn answer(around: &Around, method: &Method, path: &str) -> Response {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        around.call(request).await.unwrap()
    }

    /// The names the timer gives agree with the routes that answer, and
    /// every answer, a 404 too, carries the security headers.
    #[tokio::test]
    async fn every_route_has_its_name_and_only_404s_are_unmatched() {
        let around = around();
        let cases = [
            (Method::GET, "/", "page"),
            (Method::HEAD, "/", "page"),
            (Method::POST, "/", "vote"),
            (Method::GET, "/healthz", "healthz"),
            (Method::GET, "/readyz", "readyz"),
            (Method::GET, "/static/vote.css", "stylesheet"),
            (Method::GET, "/favicon.svg", "icon"),
            (Method::GET, "/metrics", "metrics"),
            (Method::DELETE, "/", "unmatched"),
            (Method::PUT, "/", "unmatched"),
            (Method::POST, "/healthz", "unmatched"),
            (Method::GET, "/healthz/", "unmatched"),
            (Method::GET, "/nowhere", "unmatched"),
        ];
        for (method, path, name) in cases {
            assert_eq!(ROUTES[route(&method, path)], name, "{method} {path}");
            let answer = answer(&around, &method, path).await;
            let not_found = answer.status() == StatusCode::NOT_FOUND;
            assert_eq!(not_found, name == "unmatched", "{method} {path}");
            let headers = answer.headers();
            assert_eq!(headers["x-frame-options"], "SAMEORIGIN", "{method} {path}");
        }
    }
}
