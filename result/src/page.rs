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
    id: &'static str,
    label: String,
    count_text: String,
    percent: u32,
}

impl ResultsPage {
    pub fn new(options: &VoteOptions, tally: Option<&Tally>, live: bool) -> Self {
        let counts: Vec<i64> = options
            .iter()
            .map(|o| tally.map_or(0, |t| t.count(o.id)))
            .collect();
        let rows = options
            .iter()
            .zip(&counts)
            .zip(percentages(&counts))
            .map(|((option, &count), percent)| Row {
                id: option.id,
                label: option.label.clone(),
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
