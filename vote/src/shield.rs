//! The security headers of Rocket's default `Shield`, set without its
//! per-response checks: Shield looks each header up before setting a copy
//! of it (Rocket's header map hashes names with SipHash, byte by byte), which
//! cost about 9,000 instructions per response, more than queuing the vote.

use rocket::fairing::{Fairing, Info, Kind};
use rocket::shield::Shield;
use rocket::{Request, Response};

/// What `Shield::default()` sends; no route of ours sets any of them.
const HEADERS: [(&str, &str); 3] = [
    ("X-Frame-Options", "SAMEORIGIN"),
    ("Permissions-Policy", "interest-cohort=()"),
    ("X-Content-Type-Options", "nosniff"),
];

/// Attach both: the empty `Shield` replaces Rocket's default one.
pub fn fairings() -> (Shield, SecurityHeaders) {
    (Shield::new(), SecurityHeaders)
}

pub struct SecurityHeaders;

#[rocket::async_trait]
impl Fairing for SecurityHeaders {
    fn info(&self) -> Info {
        Info {
            name: "Security headers (as Rocket's default Shield)",
            kind: Kind::Response | Kind::Singleton,
        }
    }

    async fn on_response<'r>(&self, _: &'r Request<'_>, response: &mut Response<'r>) {
        for (name, value) in HEADERS {
            response.set_raw_header(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::local::blocking::Client;

    #[rocket::get("/")]
    fn hello() -> &'static str {
        "hello"
    }

    fn headers(rocket: rocket::Rocket<rocket::Build>) -> Vec<(String, String)> {
        let client = Client::untracked(rocket.mount("/", rocket::routes![hello])).unwrap();
        let response = client.get("/").dispatch();
        let mut headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|h| (h.name().as_str().to_lowercase(), h.value().to_string()))
            .collect();
        headers.sort();
        headers
    }

    /// The same headers as Rocket's default Shield, on a response of ours
    /// and on one of Rocket's own (a 404).
    #[test]
    fn the_headers_are_those_of_the_default_shield() {
        let (shield, ours) = fairings();
        assert_eq!(
            headers(rocket::build().attach(shield).attach(ours)),
            headers(rocket::build()),
        );
        let client = Client::untracked(
            rocket::build()
                .attach(Shield::new())
                .attach(SecurityHeaders),
        )
        .unwrap();
        let missing = client.get("/nowhere").dispatch();
        assert_eq!(missing.status().code, 404);
        for (name, value) in HEADERS {
            assert_eq!(missing.headers().get_one(name), Some(value), "{name}");
        }
    }
}
