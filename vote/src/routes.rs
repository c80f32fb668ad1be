use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;

use ::metrics::Counter;

use crate::form::{read_choice, Refusal};
use crate::page::Notice;
use crate::voter::Voter;
use crate::App;

/// Every route, and around each request (the 404s too) the security
/// headers and the request's timing.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page).post(vote))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/static/vote.css", get(stylesheet))
        .route("/favicon.svg", get(icon))
        .route("/metrics", get(metrics))
        // A method a path does not take is as unknown as the path.
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(middleware::from_fn(around))
        .with_state(app)
}

/// Each route's name in `vote_http_request_duration_seconds{route}`: the
/// handler's, as Rocket named routes; `unmatched` for a 404. (GET routes
/// also answer HEAD.)
fn route_name(method: &Method, path: &str) -> &'static str {
    let get = *method == Method::GET || *method == Method::HEAD;
    match path {
        "/" if *method == Method::POST => "vote",
        "/" if get => "page",
        "/healthz" if get => "healthz",
        "/readyz" if get => "readyz",
        "/static/vote.css" if get => "stylesheet",
        "/favicon.svg" if get => "icon",
        "/metrics" if get => "metrics",
        _ => "unmatched",
    }
}

/// Around every request: the security headers on its answer, and its
/// duration by route and status class.
async fn around(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = route_name(request.method(), request.uri().path());
    let mut response = next.run(request).await;
    crate::shield::add_security_headers(response.headers_mut());
    ballot::metrics::record_request(
        "vote_http_request_duration_seconds",
        route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// `vote_ballots_total{outcome}`: handles registered once, so counting a
/// vote is one atomic add.
pub struct Outcomes {
    queued: Counter,
    refused: Counter,
    unknown: Counter,
    invalid: Counter,
}

impl Outcomes {
    pub fn register() -> Outcomes {
        ::metrics::describe_counter!(
            "vote_ballots_total",
            "Votes by outcome: queued (200), refused (503, certainly not queued), \
             unknown (504, sent but unconfirmed), invalid (4xx, a bad form)."
        );
        let outcome =
            |name: &'static str| ::metrics::counter!("vote_ballots_total", "outcome" => name);
        Outcomes {
            queued: outcome("queued"),
            refused: outcome("refused"),
            unknown: outcome("unknown"),
            invalid: outcome("invalid"),
        }
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let kind = HeaderValue::from_static(ballot::metrics::CONTENT_TYPE);
    ([(CONTENT_TYPE, kind)], app.metrics.render()).into_response()
}

async fn page(State(app): State<Arc<App>>, request: Request) -> Response {
    let voter = Voter::from_headers(request.headers());
    let page = app.page(voter.choice, Notice::None);
    answer(StatusCode::OK, page, [voter.id_cookie(), None])
}

async fn vote(State(app): State<Arc<App>>, request: Request) -> Response {
    let (request, body) = request.into_parts();
    let voter = Voter::from_headers(&request.headers);
    let cast = cast(&app, &voter, &request.headers, body).await;
    let outcomes = &app.outcomes;
    // Every vote ends here, once: the place to count them by outcome.
    let (status, page, choice_cookie) = match cast {
        // Only a queued ballot marks the new choice.
        Cast::Queued(option) => {
            outcomes.queued.increment(1);
            (
                StatusCode::OK,
                app.page(Some(option), Notice::None),
                Some(app.choice_cookie(option)),
            )
        }
        // Say "not recorded" only when it is certain; the page keeps
        // showing the choice that is.
        Cast::NotRecorded => {
            outcomes.refused.increment(1);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                app.page(voter.choice, Notice::NotRecorded),
                None,
            )
        }
        Cast::Unconfirmed => {
            outcomes.unknown.increment(1);
            (
                StatusCode::GATEWAY_TIMEOUT,
                app.page(voter.choice, Notice::Unconfirmed),
                None,
            )
        }
        Cast::Refused(refusal) => {
            outcomes.invalid.increment(1);
            let page = app.pages.with_notice(voter.choice, &refusal.message);
            (refusal.status, page.into(), None)
        }
    };
    answer(status, page, [voter.id_cookie(), choice_cookie])
}

/// What became of one `POST /`.
enum Cast {
    /// 200: the ballot for this option id is on the queue.
    Queued(&'static str),
    /// 400, 413, 415: not a well-formed vote; nothing was sent.
    Refused(Refusal),
    /// 503: the ballot never reached Redis, or Redis refused it.
    NotRecorded,
    /// 504: the ballot was sent, but Redis did not confirm it in time.
    Unconfirmed,
}

async fn cast(app: &App, voter: &Voter, headers: &HeaderMap, body: Body) -> Cast {
    let option = match read_choice(headers, body, &app.options).await {
        Ok(option) => option.id,
        Err(refusal) => return Cast::Refused(refusal),
    };
    match app.ballot_box.push(&voter.id, option).await {
        Ok(()) => Cast::Queued(option),
        Err(e) => {
            tracing::debug!("vote from {} not confirmed: {e}", voter.id);
            if e.certainly_not_run() {
                Cast::NotRecorded
            } else {
                Cast::Unconfirmed
            }
        }
    }
}

const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");

/// The vote page with a status and up to two `Set-Cookie` lines (a new
/// voter's id, a queued choice).
fn answer(status: StatusCode, page: Bytes, cookies: [Option<HeaderValue>; 2]) -> Response {
    let mut response = Response::new(Body::from(page));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HTML);
    for cookie in cookies.into_iter().flatten() {
        headers.append(SET_COOKIE, cookie);
    }
    response
}

/// Alive: answers while the process serves.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: answers 200 only while Redis does, so no votes are sent here in vain.
async fn readyz(State(app): State<Arc<App>>) -> (StatusCode, String) {
    match app.ballot_box.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
    }
}

/// A file compiled into the binary, so the image needs nothing beside it.
fn asset(kind: &'static str, body: &'static str) -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(kind)),
        (
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=86400"),
        ),
    ];
    (headers, body).into_response()
}

async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../static/vote.css"),
    )
}

async fn icon() -> Response {
    asset("image/svg+xml", include_str!("../static/favicon.svg"))
}

/// Any path (or method) the service does not serve. Not logged, so
/// scanners do not flood the log.
async fn not_found() -> (StatusCode, Html<&'static str>) {
    (
        StatusCode::NOT_FOUND,
        Html(
            "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Not found</title>\
             <p>Not found. <a href=\"/\">Vote here</a>.</p></html>\n",
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    fn app() -> Arc<App> {
        let options = ballot::VoteOptions::defaults();
        // Nothing listens there: Redis is only asked by /readyz and votes.
        let ballot_box = crate::BallotBox::new("redis://127.0.0.1:1").unwrap();
        Arc::new(App::new(options, "host-1".into(), ballot_box))
    }

    async fn status(router: &Router, method: Method, path: &str) -> StatusCode {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        router.clone().oneshot(request).await.unwrap().status()
    }

    /// The names the timer gives agree with the routes that answer.
    #[tokio::test]
    async fn every_route_has_its_name_and_only_404s_are_unmatched() {
        let router = router(app());
        let cases = [
            (Method::GET, "/", "page"),
            (Method::HEAD, "/", "page"),
            (Method::POST, "/", "vote"),
            (Method::GET, "/healthz", "healthz"),
            (Method::GET, "/readyz", "readyz"),
            (Method::GET, "/static/vote.css", "stylesheet"),
            (Method::GET, "/favicon.svg", "icon"),
            (Method::GET, "/metrics", "metrics"),
        ];
        for (method, path, name) in cases {
            assert_eq!(route_name(&method, path), name, "{method} {path}");
            let status = status(&router, method.clone(), path).await;
            assert_ne!(status, StatusCode::NOT_FOUND, "{method} {path}");
        }
        for (method, path) in [
            (Method::DELETE, "/"),
            (Method::PUT, "/"),
            (Method::POST, "/healthz"),
            (Method::GET, "/healthz/"),
            (Method::GET, "/nowhere"),
        ] {
            assert_eq!(route_name(&method, path), "unmatched", "{method} {path}");
            let status = status(&router, method.clone(), path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
        }
    }
}
