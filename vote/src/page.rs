//! The vote page, rendered by askama from `templates/vote.html`.
//!
//! Every page a vote can get differs only in the option marked as chosen
//! and the notice above the buttons, and the notices of the hot paths are
//! fixed sentences. So [`Pages`] renders each of those variants once, at
//! start, and a request only picks one; only a refused form, whose notice
//! names what was wrong, is rendered when asked for.

use askama::Template;
use ballot::VoteOptions;
use bytes::Bytes;

/// The page with its fixed parts: rendered with a choice and a notice.
#[derive(Template)]
#[template(path = "vote.html", whitespace = "minimize")]
struct VotePage<'a> {
    title: &'a str,
    choices: Vec<Choice<'a>>,
    /// Label of the option the voter chose last, if any.
    chosen: Option<&'a str>,
    /// Why the last request did not count, shown above the buttons.
    notice: Option<&'a str>,
    /// The replica that answered, and its build (see `kit::version`).
    hostname: &'a str,
    version: &'static str,
    commit: &'static str,
    /// The results page, linked below the buttons.
    result_page_url: &'a str,
}

struct Choice<'a> {
    id: &'a str,
    label: &'a str,
    chosen: bool,
}

/// The fixed notices: why a well-formed vote did not go through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    None,
    /// 503: the ballot never reached Redis, or Redis refused it.
    NotRecorded,
    /// 504: the ballot was sent, but Redis did not confirm it in time.
    Unconfirmed,
}

impl Notice {
    const ALL: [Notice; 3] = [Notice::None, Notice::NotRecorded, Notice::Unconfirmed];

    fn text(self) -> Option<&'static str> {
        match self {
            Notice::None => None,
            Notice::NotRecorded => Some(
                "Your vote was not recorded: the ballot box is unreachable right now. \
                 Please try again in a moment.",
            ),
            Notice::Unconfirmed => Some(
                "We could not confirm your vote: the ballot box did not answer in time, \
                 so it may or may not have been recorded. Voting again is safe: only \
                 your latest vote counts.",
            ),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Every variant of the page with a fixed notice, rendered at start.
pub struct Pages {
    options: VoteOptions,
    title: String,
    hostname: String,
    result_page_url: String,
    /// `rendered[chosen][notice]`: chosen 0 is none, i + 1 the i-th option;
    /// notice in the order of [`Notice::ALL`]. As `Bytes`, so an answer
    /// shares the page rather than copying it.
    rendered: Vec<[Bytes; 3]>,
}

impl Pages {
    pub fn new(options: &VoteOptions, title: &str, hostname: &str, result_page_url: &str) -> Pages {
        let mut pages = Pages {
            options: options.clone(),
            title: title.to_string(),
            hostname: hostname.to_string(),
            result_page_url: result_page_url.to_string(),
            rendered: Vec::new(),
        };
        let chosen = std::iter::once(None).chain(options.iter().map(|o| Some(o.id)));
        pages.rendered = chosen
            .map(|choice| Notice::ALL.map(|notice| pages.render(choice, notice.text()).into()))
            .collect();
        pages
    }

    /// The page marking `choice` (an option id; anything else marks none),
    /// with `notice`.
    pub fn get(&self, choice: Option<&str>, notice: Notice) -> &Bytes {
        &self.rendered[self.chosen_index(choice)][notice.index()]
    }

    /// The page marking `choice`, with a notice of its own (a refused form).
    pub fn with_notice(&self, choice: Option<&str>, notice: &str) -> String {
        self.render(choice, Some(notice))
    }

    fn chosen_index(&self, choice: Option<&str>) -> usize {
        choice
            .and_then(|id| self.options.iter().position(|o| o.id == id))
            .map_or(0, |i| i + 1)
    }

    fn render(&self, choice: Option<&str>, notice: Option<&str>) -> String {
        let choices: Vec<Choice> = self
            .options
            .iter()
            .map(|o| Choice {
                id: o.id,
                label: &o.label,
                chosen: choice == Some(o.id),
            })
            .collect();
        let page = VotePage {
            title: &self.title,
            chosen: choices.iter().find(|c| c.chosen).map(|c| c.label),
            choices,
            notice,
            hostname: &self.hostname,
            version: kit::version::VERSION,
            commit: kit::version::COMMIT,
            result_page_url: &self.result_page_url,
        };
        // Only a formatter error could fail it, and writing to a String has none.
        page.render().expect("the vote page renders")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballot::options::OptionArgs;

    const RESULTS: &str = "http://results.example:5001/?from=vote&x=1";

    fn three_options() -> VoteOptions {
        OptionArgs {
            option_c: Some("Fish <&> \"Chips\"".into()),
            ..OptionArgs::default()
        }
        .options()
    }

    fn marks(page: &str, label: &str) -> bool {
        page.contains(&format!("You voted for <strong>{label}</strong>."))
    }

    fn text(page: &Bytes) -> &str {
        std::str::from_utf8(page).unwrap()
    }

    #[test]
    fn every_cached_variant_is_the_page_rendered_for_it() {
        let options = three_options();
        let pages = Pages::new(&options, "Cats vs Dogs vs Fish!", "host-1", RESULTS);
        let choices = [None, Some("a"), Some("b"), Some("c")];
        for choice in choices {
            for notice in Notice::ALL {
                assert_eq!(
                    *pages.get(choice, notice),
                    pages.render(choice, notice.text()),
                    "{choice:?} {notice:?}"
                );
            }
        }
    }

    #[test]
    fn the_cached_pages_mark_the_choice_and_show_the_notice() {
        let pages = Pages::new(&three_options(), "Cats vs Dogs vs Fish!", "host-1", RESULTS);
        for (choice, label) in [("a", "Cats"), ("b", "Dogs")] {
            let page = text(pages.get(Some(choice), Notice::None));
            assert!(marks(page, label), "{page}");
            assert_eq!(page.matches(r#"aria-pressed="true""#).count(), 1, "{page}");
            assert!(!page.contains(r#"role="alert""#), "{page}");
        }
        // Labels are escaped, in the mark as on the button.
        let fish = text(pages.get(Some("c"), Notice::None));
        assert!(
            marks(fish, "Fish &#60;&#38;&#62; &#34;Chips&#34;"),
            "{fish}"
        );

        let none = text(pages.get(None, Notice::None));
        assert!(none.contains("Tap an option to vote."), "{none}");
        assert!(!none.contains(r#"aria-pressed="true""#), "{none}");
        assert!(none.contains("<code>host-1</code>"), "{none}");
        let build = format!(
            "version <code>{}</code>, commit <code>{}</code>",
            kit::version::VERSION,
            kit::version::COMMIT
        );
        assert!(none.contains(&build), "{none}");
        // The link to the results, its address escaped as an attribute.
        assert!(
            none.contains(r#"href="http://results.example:5001/?from=vote&#38;x=1""#),
            "{none}"
        );
        assert!(
            none.contains("<title>Cats vs Dogs vs Fish!</title>"),
            "{none}"
        );

        let refused = text(pages.get(Some("b"), Notice::NotRecorded));
        assert!(marks(refused, "Dogs"), "{refused}");
        assert!(refused.contains("Your vote was not recorded"), "{refused}");
        let unconfirmed = text(pages.get(None, Notice::Unconfirmed));
        assert!(
            unconfirmed.contains("Voting again is safe"),
            "{unconfirmed}"
        );
        assert!(
            unconfirmed.contains("Tap an option to vote."),
            "{unconfirmed}"
        );
    }

    #[test]
    fn an_unknown_choice_marks_nothing() {
        let pages = Pages::new(&VoteOptions::defaults(), "Cats vs Dogs!", "h", RESULTS);
        for choice in [Some("c"), Some("z"), Some(""), None] {
            assert_eq!(
                pages.get(choice, Notice::None),
                pages.get(None, Notice::None)
            );
        }
    }

    #[test]
    fn a_refusal_gets_its_own_notice_escaped() {
        let pages = Pages::new(&VoteOptions::defaults(), "Cats vs Dogs!", "h", RESULTS);
        let page = pages.with_notice(Some("a"), "There is no option \"<z>\".");
        assert!(marks(&page, "Cats"), "{page}");
        assert!(
            page.contains("There is no option &#34;&#60;z&#62;&#34;."),
            "{page}"
        );
    }
}
