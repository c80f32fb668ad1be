//! The results page, rendered with the current tally so it means something
//! before (and without) JavaScript.

use askama::Template;
use ballot::{Tally, VoteOptions};

use crate::share::{percentages, total_text, votes_text};

#[derive(Template)]
#[template(path = "result.html")]
pub struct ResultsPage<'a> {
    title: String,
    rows: Vec<Row>,
    total: String,
    live: bool,
    around: &'a Surroundings,
    version: &'static str,
    commit: &'static str,
}

/// What the page shows besides the tally, fixed at start.
pub struct Surroundings {
    /// The replica that answered (see `kit::version`).
    pub hostname: String,
    /// The vote page, linked below the total.
    pub vote_page_url: String,
}

struct Row {
    id: String,
    label: String,
    count_text: String,
    /// `None` while nothing is counted: no share to show.
    percent: Option<u32>,
}

impl<'a> ResultsPage<'a> {
    /// A row per configured option, and one for any option the tally
    /// counts votes for but this service has no label for ("Option C").
    pub fn new(
        options: &VoteOptions,
        tally: Option<&Tally>,
        live: bool,
        around: &'a Surroundings,
    ) -> Self {
        let ids: Vec<&str> = match tally {
            Some(tally) => tally.votes.keys().map(String::as_str).collect(),
            None => options.iter().map(|o| o.id).collect(),
        };
        let counts: Vec<i64> = ids
            .iter()
            .map(|id| tally.map_or(0, |t| t.count(id)))
            .collect();
        let shares = percentages(&counts);
        let rows = ids
            .iter()
            .zip(&counts)
            .enumerate()
            .map(|(i, (&id, &count))| Row {
                id: id.to_string(),
                label: options.label(id),
                count_text: votes_text(count),
                percent: shares.as_ref().map(|shares| shares[i]),
            })
            .collect();
        let labels: Vec<&str> = options.iter().map(|o| o.label.as_str()).collect();
        ResultsPage {
            title: labels.join(" vs "),
            rows,
            total: total_text(tally.map_or(0, |t| t.total)),
            live,
            around,
            version: kit::version::VERSION,
            commit: kit::version::COMMIT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn around() -> Surroundings {
        Surroundings {
            hostname: "replica-7".into(),
            vote_page_url: "http://vote.example/?a=1&b=2".into(),
        }
    }

    fn tally(a: i64, b: i64) -> Tally {
        let votes = BTreeMap::from([("a".to_string(), a), ("b".to_string(), b)]);
        Tally {
            votes,
            total: a + b,
        }
    }

    #[test]
    fn no_votes_no_percentages() {
        let around = around();
        let options = VoteOptions::defaults();
        for tally in [None, Some(tally(0, 0))] {
            let page = ResultsPage::new(&options, tally.as_ref(), true, &around)
                .render()
                .unwrap();
            // A share shows as "<n>%</span>"; the bars are empty.
            assert!(!page.contains("%</span>"), "{page}");
            assert_eq!(page.matches("width: 0%").count(), 2, "{page}");
            assert_eq!(page.matches(r#"class="percent none""#).count(), 2, "{page}");
            assert!(page.contains("No votes yet"), "{page}");
        }
        let page = ResultsPage::new(&options, Some(&tally(2, 1)), true, &around)
            .render()
            .unwrap();
        assert!(page.contains(">67%</span>"), "{page}");
        assert!(page.contains(">33%</span>"), "{page}");
        assert!(!page.contains("percent none"), "{page}");
    }

    #[test]
    fn the_page_names_its_replica_and_build_and_links_to_the_vote() {
        let around = around();
        let page = ResultsPage::new(&VoteOptions::defaults(), None, true, &around)
            .render()
            .unwrap();
        assert!(
            page.contains("Processed by container ID <code>replica-7</code>"),
            "{page}"
        );
        let build = format!(
            "version <code>{}</code>, commit <code>{}</code>",
            kit::version::VERSION,
            kit::version::COMMIT
        );
        assert!(page.contains(&build), "{page}");
        assert!(
            page.contains(r#"href="http://vote.example/?a=1&#38;b=2""#),
            "{page}"
        );
    }
}
