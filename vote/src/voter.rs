//! Who is voting: the `voter_id` cookie, and the `vote` cookie that remembers
//! their last choice so the page can mark it (Redis is write-only for us).
//!
//! Both are set as ready-made `Set-Cookie` lines ([`set_cookie`]); the
//! request's `Cookie` headers are read with the `cookie` crate, percent-
//! decoded, as Rocket read them.

use std::fmt::Write;

use axum::http::header::COOKIE;
use axum::http::{HeaderMap, HeaderValue};
use ballot::options::OPTION_IDS;
use cookie::Cookie;

pub const VOTER_ID: &str = "voter_id";
pub const CHOICE: &str = "vote";

/// The attributes of both cookies: kept for a year, not for scripts, sent
/// on top-level navigation from other sites (a shared link) but not on
/// their embedded requests.
const ATTRIBUTES: &str = "; HttpOnly; SameSite=Lax; Path=/; Max-Age=31536000";

pub struct Voter {
    pub id: String,
    /// True when the request carried no well-formed id: `id` is new and the
    /// answer must set it.
    pub new: bool,
    /// The option id they last voted for, as their browser remembers it.
    pub choice: Option<&'static str>,
}

impl Voter {
    /// The voter a request's cookies name. Never fails: a voter without a
    /// well-formed id gets a new one.
    pub fn from_headers(headers: &HeaderMap) -> Voter {
        let (mut id, mut choice) = (None, None);
        // Of cookies named twice, the last counts.
        for cookie in cookies(headers) {
            match cookie.name() {
                VOTER_ID => id = Some(cookie),
                CHOICE => choice = Some(cookie),
                _ => {}
            }
        }
        let (id, new) = match id {
            Some(id) if is_voter_id(id.value()) => (id.value().to_string(), false),
            _ => (new_voter_id(), true),
        };
        // Only an option id can be marked; anything else is no choice.
        let choice = choice.and_then(|c| OPTION_IDS.iter().find(|&&id| id == c.value()).copied());
        Voter { id, new, choice }
    }

    /// The `Set-Cookie` value that gives a new voter their id.
    pub fn id_cookie(&self) -> Option<HeaderValue> {
        self.new.then(|| set_cookie(VOTER_ID, &self.id))
    }
}

/// Every cookie of every `Cookie` header; headers that are not text and
/// pairs that do not parse are skipped.
fn cookies(headers: &HeaderMap) -> impl Iterator<Item = Cookie<'_>> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|header| header.to_str().ok())
        .flat_map(Cookie::split_parse_encoded)
        .filter_map(Result::ok)
}

/// The value of a `Set-Cookie` header for a lasting cookie, as the `cookie`
/// crate writes it: `vote=a; HttpOnly; SameSite=Lax; Path=/; Max-Age=31536000`.
/// `value` must be cookie-safe (ids and option ids are).
pub fn set_cookie(name: &str, value: &str) -> HeaderValue {
    let mut line = String::with_capacity(name.len() + 1 + value.len() + ATTRIBUTES.len());
    line.push_str(name);
    line.push('=');
    line.push_str(value);
    line.push_str(ATTRIBUTES);
    HeaderValue::try_from(line).expect("cookie names and values are header-safe")
}

/// 128 random bits as 32 lowercase hex digits.
fn new_voter_id() -> String {
    let mut id = String::with_capacity(32);
    write!(id, "{:032x}", rand::random::<u128>()).expect("writing to a String");
    id
}

/// Ours (32 hex digits), the reference app's (14-16 hex digits) and any
/// other client's that is 1-64 characters from `[0-9A-Za-z_-]`: kept, so a
/// voter is not counted twice when the reference app is swapped for ours.
/// Anything else is replaced, never trusted.
pub fn is_voter_id(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use cookie::time::Duration;
    use cookie::SameSite;

    #[test]
    fn new_ids_are_well_formed_and_distinct() {
        let (a, b) = (new_voter_id(), new_voter_id());
        assert!(is_voter_id(&a) && is_voter_id(&b), "{a} {b}");
        assert_eq!((a.len(), b.len()), (32, 32));
        assert_ne!(a, b);
    }

    fn voter(cookies: &[&str]) -> Voter {
        let mut headers = HeaderMap::new();
        for line in cookies {
            headers.append(COOKIE, HeaderValue::from_str(line).unwrap());
        }
        Voter::from_headers(&headers)
    }

    #[test]
    fn the_cookies_name_the_voter_and_their_choice() {
        let known = voter(&["theme=dark; voter_id=42ea16b298bc356", "vote=b"]);
        assert_eq!(known.id, "42ea16b298bc356");
        assert!(!known.new);
        assert_eq!(known.choice, Some("b"));
        // Percent-decoded, as Rocket read cookies; the last of two counts.
        let decoded = voter(&["voter_id=first; voter_id=A%2Db%5F9; vote=%61"]);
        assert_eq!((decoded.id.as_str(), decoded.new), ("A-b_9", false));
        assert_eq!(decoded.choice, Some("a"));
    }

    #[test]
    fn a_voter_without_a_well_formed_id_gets_a_new_one() {
        for cookies in [&[][..], &["voter_id=../../etc; vote=z"], &["voter_id="]] {
            let new = voter(cookies);
            assert!(new.new && new.id.len() == 32, "{cookies:?}: {}", new.id);
            assert_eq!(new.choice, None, "{cookies:?}");
            assert_eq!(
                new.id_cookie().unwrap(),
                set_cookie(VOTER_ID, &new.id),
                "{cookies:?}"
            );
        }
        assert_eq!(voter(&["voter_id=7"]).id_cookie(), None);
    }

    #[test]
    fn ids_of_other_clients_are_accepted() {
        for good in ["42ea16b298bc356", "x", "A-b_9", &"Z".repeat(64)] {
            assert!(is_voter_id(good), "{good}");
        }
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in ["", &"a".repeat(65), "a.b", "a b", "../../etc", "é", "a;b"] {
            assert!(!is_voter_id(bad), "{bad}");
        }
    }

    /// The line is the one the `cookie` crate (Rocket's cookie jar, before)
    /// writes for the same cookie.
    #[test]
    fn set_cookie_lines_are_those_of_the_cookie_crate() {
        for (name, value) in [(VOTER_ID, new_voter_id().as_str()), (CHOICE, "h")] {
            let jar_line = Cookie::build((name, value))
                .http_only(true)
                .same_site(SameSite::Lax)
                .path("/")
                .max_age(Duration::days(365))
                .build()
                .to_string();
            assert_eq!(set_cookie(name, value), jar_line.as_str());
        }
    }
}
