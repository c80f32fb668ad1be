//! Who is voting: the `voter_id` cookie, and the `vote` cookie that remembers
//! their last choice so the page can mark it (Redis is write-only for us).
//!
//! Both are set as ready-made `Set-Cookie` lines ([`set_cookie`]) rather than
//! through Rocket's cookie jar, which would format each one again per response.

use std::borrow::Cow;
use std::fmt::Write;

use ballot::options::OPTION_IDS;
use rocket::request::{FromRequest, Outcome, Request};

pub const VOTER_ID: &str = "voter_id";
pub const CHOICE: &str = "vote";

/// The attributes of both cookies: kept for a year, not for scripts, sent
/// on top-level navigation from other sites (a shared link) but not on
/// their embedded requests.
const ATTRIBUTES: &str = "; HttpOnly; SameSite=Lax; Path=/; Max-Age=31536000";

pub struct Voter<'r> {
    pub id: Cow<'r, str>,
    /// True when the request carried no well-formed id: `id` is new and the
    /// answer must set it.
    pub new: bool,
    /// The option id they last voted for, as their browser remembers it.
    pub choice: Option<&'static str>,
}

impl Voter<'_> {
    /// The `Set-Cookie` line that gives a new voter their id.
    pub fn id_cookie(&self) -> Option<String> {
        self.new.then(|| set_cookie(VOTER_ID, &self.id))
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Voter<'r> {
    type Error = std::convert::Infallible;

    /// Never fails: a voter without a well-formed id gets a new one.
    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let cookies = request.cookies();
        let (id, new) = match cookies.get(VOTER_ID).map(|c| c.value()) {
            Some(id) if is_voter_id(id) => (Cow::Borrowed(id), false),
            _ => (Cow::Owned(new_voter_id()), true),
        };
        // Only an option id can be marked; anything else is no choice.
        let choice = cookies
            .get(CHOICE)
            .and_then(|c| OPTION_IDS.iter().find(|&&id| id == c.value()))
            .copied();
        Outcome::Success(Voter { id, new, choice })
    }
}

/// The value of a `Set-Cookie` header for a lasting cookie, as the `cookie`
/// crate writes it: `vote=a; HttpOnly; SameSite=Lax; Path=/; Max-Age=31536000`.
/// `value` must be cookie-safe (ids and option ids are).
pub fn set_cookie(name: &str, value: &str) -> String {
    let mut line = String::with_capacity(name.len() + 1 + value.len() + ATTRIBUTES.len());
    line.push_str(name);
    line.push('=');
    line.push_str(value);
    line.push_str(ATTRIBUTES);
    line
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
    use rocket::http::{Cookie, SameSite};
    use rocket::time::Duration;

    #[test]
    fn new_ids_are_well_formed_and_distinct() {
        let (a, b) = (new_voter_id(), new_voter_id());
        assert!(is_voter_id(&a) && is_voter_id(&b), "{a} {b}");
        assert_eq!((a.len(), b.len()), (32, 32));
        assert_ne!(a, b);
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

    /// The line is the one Rocket's cookie jar wrote for the same cookie.
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
            assert_eq!(set_cookie(name, value), jar_line);
        }
    }
}
