//! The security headers Rocket's default `Shield` sent, which vote kept when
//! it moved off Rocket: set on every answer, 404s included.

use axum::http::header::{X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use axum::http::{HeaderMap, HeaderName, HeaderValue};

const HEADERS: [(HeaderName, HeaderValue); 3] = [
    (X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN")),
    (
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("interest-cohort=()"),
    ),
    (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
];

/// Sets the headers, replacing any a route set.
pub fn add_security_headers(headers: &mut HeaderMap) {
    for (name, value) in HEADERS {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exactly the headers and values of Rocket 0.5's `Shield::default()`.
    #[test]
    fn the_headers_are_those_of_rockets_default_shield() {
        let mut headers = HeaderMap::new();
        headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        add_security_headers(&mut headers);
        let mut set: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.to_str().unwrap()))
            .collect();
        set.sort();
        assert_eq!(
            set,
            [
                ("permissions-policy", "interest-cohort=()"),
                ("x-content-type-options", "nosniff"),
                ("x-frame-options", "SAMEORIGIN"),
            ]
        );
    }
}
