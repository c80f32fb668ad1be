use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;
use kit::demo::DelayRange;
use kit::http::Routes;

use ::metrics::Counter;

use crate::form::{read_choice, Refusal};
use crate::page::Notice;
use crate::voter::Voter;
use crate::App;

/// Every route, with the name it is timed under (the names dashboards use).
/// `delay`: `DEMO_DELAY`.
pub fn app(app: Arc<App>, delay: Option<DelayRange>) -> kit::http::App {
    Routes::new()
        .get("page", "/", page)
        .post("vote", "/", vote)
        .readyz(readyz, &app.readiness)
        .get("stylesheet", "/static/vote.css", stylesheet)
        .get("icon", "/favicon.svg", icon)
        .demo_delay(delay)
        .finish(app, "vote", not_found)
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
    // A demo fault: answered as a Redis outage would be, before anything
    // is sent, so the ballot is certainly not queued.
    if app.refuse.is_some_and(|refuse| refuse.hit()) {
        return Cast::NotRecorded;
    }
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

/// Ready: answers 200 only while Redis does, so no votes are sent here in
/// vain, and not once shutting down, so the edge stops sending any.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    let now = if app.draining.is_cancelled() {
        Err("shutting down".into())
    } else {
        app.ballot_box.ping().await.map_err(|e| e.to_string())
    };
    app.readiness.answer(now)
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
