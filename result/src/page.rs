//! The results page, rendered with the current tally so it means something
//! before (and without) JavaScript.

use askama::Template;
use ballot::{Tally, VoteOptions};

use crate::share::{percentages, total_text, votes_text};

#[derive(Template)]
#[template(path = "result.html")]
pub struct ResultsPage {
    title: String,
    rows: Vec<Row>,
    total: String,
    live: bool,
}

struct Row {
    id: String,
    label: String,
    count_text: String,
    percent: u32,
}

impl ResultsPage {
    /// A row per configured option, and one for any option the tally
    /// counts votes for but this service has no label for ("Option C").
    pub fn new(options: &VoteOptions, tally: Option<&Tally>, live: bool) -> Self {
        let ids: Vec<&str> = match tally {
            Some(tally) => tally.votes.keys().map(String::as_str).collect(),
            None => options.iter().map(|o| o.id).collect(),
        };
        let counts: Vec<i64> = ids
            .iter()
            .map(|id| tally.map_or(0, |t| t.count(id)))
            .collect();
        let rows = ids
            .iter()
            .zip(&counts)
            .zip(percentages(&counts))
            .map(|((&id, &count), percent)| Row {
                id: id.to_string(),
                label: options.label(id),
                count_text: votes_text(count),
                percent,
            })
            .collect();
        let labels: Vec<&str> = options.iter().map(|o| o.label.as_str()).collect();
        ResultsPage {
            title: labels.join(" vs "),
            rows,
            total: total_text(tally.map_or(0, |t| t.total)),
            live,
        }
    }
}
