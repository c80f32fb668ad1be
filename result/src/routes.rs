//! HTTP: the page and its assets, the tally as JSON and over a websocket,
//! and readiness.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use kit::demo::DelayRange;
use kit::http::{not_found, Routes};

use crate::feed::Published;
use crate::page::ResultsPage;
use crate::App;

/// Every route, with the name it is timed under (the names Rocket gave
/// them, which dashboards select on).
/// `delay`: `DEMO_DELAY`.
pub fn app(app: Arc<App>, delay: Option<DelayRange>) -> kit::http::App {
    Routes::new()
        .get("page", "/", page)
        .get("script", "/result.js", script)
        .get("style", "/result.css", style)
        .get("favicon", "/favicon.svg", favicon)
        .get("tally", "/api/tally", tally)
        .get("socket", "/ws", socket)
        .readyz(readyz, &app.readiness)
        .demo_delay(delay)
        .finish(app, "result", not_found)
}

const DATABASE_DOWN: (StatusCode, &str) =
    (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n");

async fn page(State(app): State<Arc<App>>) -> Html<String> {
    let feed = app.feed.borrow().clone();
    let tally = feed.latest.as_ref().map(|p| &p.tally);
    let page = ResultsPage::new(&app.options, tally, feed.live, &app.page);
    Html(page.render().expect("the results page renders"))
}

/// A file compiled into the binary, so the image needs nothing beside it.
fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(CONTENT_TYPE, kind)], body).into_response()
}

async fn script() -> Response {
    asset("text/javascript", include_str!("../static/result.js"))
}

async fn style() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../static/result.css"),
    )
}

async fn favicon() -> Response {
    asset("image/svg+xml", include_str!("../static/favicon.svg"))
}

async fn tally(State(app): State<Arc<App>>) -> Response {
    let Some(latest) = current(&app) else {
        return DATABASE_DOWN.into_response();
    };
    let json = Bytes::from(latest.json.clone());
    ([(CONTENT_TYPE, "application/json")], json).into_response()
}

/// While Postgres is away the upgrade is refused, so browsers show
/// "reconnecting" and retry. A request that is no websocket upgrade gets
/// 400 and the reason as text, whatever its method.
async fn socket(
    State(app): State<Arc<App>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(refused) => return (StatusCode::BAD_REQUEST, refused.body_text()).into_response(),
    };
    if current(&app).is_none() {
        return DATABASE_DOWN.into_response();
    }
    crate::socket::accept(upgrade, &app)
}

/// Ready: 200 only while Postgres answers, and not once shutting down, so
/// that the edge sends no new client here.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    let now = if app.draining.is_cancelled() {
        Err("shutting down".into())
    } else if current(&app).is_none() {
        Err("database unavailable".into())
    } else {
        Ok(())
    };
    app.readiness.answer(now)
}

/// The latest tally, if Postgres answers.
fn current(app: &App) -> Option<Arc<Published>> {
    let feed = app.feed.borrow();
    feed.live.then(|| feed.latest.clone()).flatten()
}
