use rocket::data::Data;
use rocket::http::{ContentType, CookieJar, Header, Status};
use rocket::response::content::RawHtml;
use rocket::{catch, catchers, get, post, routes, Catcher, Responder, Route, State};

use crate::form::read_choice;
use crate::page::VotePage;
use crate::voter::Voter;
use crate::App;

pub fn routes() -> Vec<Route> {
    routes![page, vote, healthz, readyz, stylesheet, icon]
}

pub fn catchers() -> Vec<Catcher> {
    catchers![not_found]
}

/// 503: the ballot never reached Redis, or Redis refused it.
const NOT_RECORDED: &str = "Your vote was not recorded: the ballot box is unreachable \
                            right now. Please try again in a moment.";

/// 504: the ballot was sent, but Redis did not confirm it in time.
const UNCONFIRMED: &str = "We could not confirm your vote: the ballot box did not answer \
                           in time, so it may or may not have been recorded. Voting again \
                           is safe: only your latest vote counts.";

#[get("/")]
fn page<'r>(app: &'r State<App>, voter: Voter) -> VotePage<'r> {
    VotePage::new(app, voter.choice.as_deref(), None)
}

#[post("/", data = "<form>")]
async fn vote<'r>(
    app: &'r State<App>,
    mut voter: Voter,
    cookies: &CookieJar<'_>,
    content_type: Option<&ContentType>,
    form: Data<'_>,
) -> (Status, VotePage<'r>) {
    let option = match read_choice(content_type, form, &app.options).await {
        Ok(option) => option,
        Err(refusal) => {
            let page = VotePage::new(app, voter.choice.as_deref(), Some(refusal.message));
            return (refusal.status, page);
        }
    };
    if let Err(e) = app.ballot_box.push(&voter.id, option.id).await {
        tracing::debug!("vote from {} not confirmed: {e}", voter.id);
        // Say "not recorded" only when it is certain; the page keeps
        // showing the choice that is.
        let (status, notice) = if e.certainly_not_run() {
            (Status::ServiceUnavailable, NOT_RECORDED)
        } else {
            (Status::GatewayTimeout, UNCONFIRMED)
        };
        let page = VotePage::new(app, voter.choice.as_deref(), Some(notice.into()));
        return (status, page);
    }
    voter.chose(option.id, cookies);
    (
        Status::Ok,
        VotePage::new(app, voter.choice.as_deref(), None),
    )
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
