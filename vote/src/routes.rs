use std::borrow::Cow;
use std::io::Cursor;

use rocket::data::Data;
use rocket::http::{ContentType, Header, Status};
use rocket::response::content::RawHtml;
use rocket::response::{self, Responder};
use rocket::{catch, catchers, get, post, routes, Catcher, Request, Response, Route, State};

use ::metrics::Counter;
use ballot::metrics::Metrics;

use crate::form::{read_choice, Refusal};
use crate::page::Notice;
use crate::voter::Voter;
use crate::App;

pub fn routes() -> Vec<Route> {
    routes![page, vote, healthz, readyz, stylesheet, icon, metrics]
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

#[get("/metrics")]
fn metrics(metrics: &State<&'static Metrics>) -> (ContentType, String) {
    (ballot::metrics::content_type(), metrics.render())
}

pub fn catchers() -> Vec<Catcher> {
    catchers![not_found]
}

#[get("/")]
fn page<'r>(app: &'r State<App>, voter: Voter<'r>) -> Answer<'r> {
    Answer {
        status: Status::Ok,
        page: Cow::Borrowed(app.pages.get(voter.choice, Notice::None)),
        cookies: [voter.id_cookie().map(Cow::Owned), None],
    }
}

#[post("/", data = "<form>")]
async fn vote<'r>(
    app: &'r State<App>,
    voter: Voter<'r>,
    content_type: Option<&ContentType>,
    form: Data<'_>,
) -> Answer<'r> {
    let cast = cast(app, &voter, content_type, form).await;
    let outcomes = &app.outcomes;
    // Every vote ends here, once: the place to count them by outcome.
    let (status, page, choice_cookie) = match cast {
        // Only a queued ballot marks the new choice.
        Cast::Queued(option) => {
            outcomes.queued.increment(1);
            (
                Status::Ok,
                Cow::Borrowed(app.pages.get(Some(option), Notice::None)),
                Some(Cow::Borrowed(app.choice_cookie(option))),
            )
        }
        // Say "not recorded" only when it is certain; the page keeps
        // showing the choice that is.
        Cast::NotRecorded => {
            outcomes.refused.increment(1);
            (
                Status::ServiceUnavailable,
                Cow::Borrowed(app.pages.get(voter.choice, Notice::NotRecorded)),
                None,
            )
        }
        Cast::Unconfirmed => {
            outcomes.unknown.increment(1);
            (
                Status::GatewayTimeout,
                Cow::Borrowed(app.pages.get(voter.choice, Notice::Unconfirmed)),
                None,
            )
        }
        Cast::Refused(refusal) => {
            outcomes.invalid.increment(1);
            (
                refusal.status,
                Cow::Owned(app.pages.with_notice(voter.choice, &refusal.message)),
                None,
            )
        }
    };
    Answer {
        status,
        page,
        cookies: [voter.id_cookie().map(Cow::Owned), choice_cookie],
    }
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

async fn cast(
    app: &App,
    voter: &Voter<'_>,
    content_type: Option<&ContentType>,
    form: Data<'_>,
) -> Cast {
    let option = match read_choice(content_type, form, &app.options).await {
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

/// The vote page with a status and up to two `Set-Cookie` lines (a new
/// voter's id, a queued choice), built without copying the page.
struct Answer<'r> {
    status: Status,
    page: Cow<'r, str>,
    cookies: [Option<Cow<'r, str>>; 2],
}

impl<'r> Responder<'r, 'r> for Answer<'r> {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'r> {
        let mut response = Response::build();
        response.status(self.status).header(ContentType::HTML);
        for cookie in self.cookies.into_iter().flatten() {
            response.raw_header_adjoin("Set-Cookie", cookie);
        }
        match self.page {
            Cow::Borrowed(page) => response.sized_body(page.len(), Cursor::new(page)),
            Cow::Owned(page) => response.sized_body(page.len(), Cursor::new(page)),
        };
        response.ok()
    }
}

/// Alive: answers while the process serves.
#[get("/healthz")]
fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: answers 200 only while Redis does, so no votes are sent here in vain.
#[get("/readyz")]
async fn readyz(app: &State<App>) -> (Status, String) {
    match app.ballot_box.ping().await {
        Ok(()) => (Status::Ok, "ready\n".into()),
        Err(e) => (Status::ServiceUnavailable, format!("not ready: {e}\n")),
    }
}

/// A file compiled into the binary, so the image needs nothing beside it.
#[derive(Responder)]
struct Asset {
    body: (ContentType, &'static str),
    cache: Header<'static>,
}

fn asset(kind: ContentType, body: &'static str) -> Asset {
    Asset {
        body: (kind, body),
        cache: Header::new("Cache-Control", "public, max-age=86400"),
    }
}

#[get("/static/vote.css")]
fn stylesheet() -> Asset {
    asset(ContentType::CSS, include_str!("../static/vote.css"))
}

#[get("/favicon.svg")]
fn icon() -> Asset {
    asset(ContentType::SVG, include_str!("../static/favicon.svg"))
}

/// Any path the service does not serve. Rocket logs each such request at
/// ERROR and WARN under the target `rocket::server::_`, which the default log
/// filter (ballot::telemetry) leaves out, so scanners do not flood the log.
#[catch(404)]
fn not_found() -> RawHtml<&'static str> {
    RawHtml(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Not found</title>\
         <p>Not found. <a href=\"/\">Vote here</a>.</p></html>\n",
    )
}
