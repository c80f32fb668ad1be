//! Who is voting: the `voter_id` cookie, and the `vote` cookie that remembers
//! their last choice so the page can mark it (Redis is write-only for us).

use rocket::http::{Cookie, CookieJar, SameSite};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::time::Duration;

const VOTER_ID: &str = "voter_id";
const CHOICE: &str = "vote";

pub struct Voter {
    pub id: String,
    /// The option id they last voted for, as their browser remembers it.
    pub choice: Option<String>,
}

impl Voter {
    /// Remembers their choice for the next page view.
    pub fn chose(&mut self, option_id: &str, cookies: &CookieJar<'_>) {
        cookies.add(lasting(CHOICE, option_id.to_string()));
        self.choice = Some(option_id.to_string());
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Voter {
    type Error = std::convert::Infallible;

    /// Never fails: a voter without a well-formed id gets a new one.
    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let cookies = request.cookies();
        let id = match cookies.get(VOTER_ID).map(Cookie::value) {
            Some(id) if is_voter_id(id) => id.to_string(),
            _ => {
                let id = new_voter_id();
                cookies.add(lasting(VOTER_ID, id.clone()));
                id
            }
        };
        let choice = cookies.get(CHOICE).map(|c| c.value().to_string());
        Outcome::Success(Voter { id, choice })
    }
}

/// 128 random bits as 32 lowercase hex digits.
fn new_voter_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Ours (32 hex digits), the reference app's (14-16 hex digits) and any
/// other client's that is 1-64 characters from `[0-9A-Za-z_-]`: kept, so a
/// voter is not counted twice when the reference app is swapped for ours.
/// Anything else is replaced, never trusted.
fn is_voter_id(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn lasting(name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .max_age(Duration::days(365))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_well_formed_and_distinct() {
        let (a, b) = (new_voter_id(), new_voter_id());
        assert!(is_voter_id(&a) && is_voter_id(&b), "{a} {b}");
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
}
