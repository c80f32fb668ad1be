//! The vote page, rendered by askama from `templates/vote.html`.

use askama::Template;
use rocket::http::Status;
use rocket::response::content::RawHtml;
use rocket::response::{self, Responder};
use rocket::Request;

use crate::App;

#[derive(Template)]
#[template(path = "vote.html", whitespace = "minimize")]
pub struct VotePage<'a> {
    title: &'a str,
    choices: Vec<Choice<'a>>,
    /// Label of the option the voter chose last, if any.
    chosen: Option<&'a str>,
    /// Why the last request did not count, shown above the buttons.
    notice: Option<String>,
    hostname: &'a str,
}

struct Choice<'a> {
    id: &'a str,
    label: &'a str,
    chosen: bool,
}

impl<'a> VotePage<'a> {
    pub fn new(app: &'a App, choice: Option<&str>, notice: Option<String>) -> Self {
        let choices: Vec<Choice> = app
            .options
            .iter()
            .map(|o| Choice {
                id: o.id,
                label: &o.label,
                chosen: choice == Some(o.id),
            })
            .collect();
        VotePage {
            title: &app.title,
            chosen: choices.iter().find(|c| c.chosen).map(|c| c.label),
            choices,
            notice,
            hostname: &app.hostname,
        }
    }
}

impl<'r> Responder<'r, 'static> for VotePage<'_> {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        match self.render() {
            Ok(html) => RawHtml(html).respond_to(request),
            Err(e) => {
                tracing::error!("vote page failed to render: {e}");
                Err(Status::InternalServerError)
            }
        }
    }
}
