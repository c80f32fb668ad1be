//! The security headers Rocket's default `Shield` sent, which the services
//! kept when they moved off Rocket: set on every answer, 404s included,
//! replacing any a route set.

use axum::http::header::{X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use axum::http::{HeaderName, HeaderValue};
use tower::layer::util::Stack;
use tower_http::set_header::{SetResponseHeader, SetResponseHeaderLayer};

type Set = SetResponseHeaderLayer<HeaderValue>;

/// `S` with the three headers set on its answers.
pub type Headers<S> = SetResponseHeader<
    SetResponseHeader<SetResponseHeader<S, HeaderValue>, HeaderValue>,
    HeaderValue,
>;

pub fn layer() -> Stack<Set, Stack<Set, Set>> {
    let set = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
    };
    Stack::new(
        set(X_CONTENT_TYPE_OPTIONS, "nosniff"),
        Stack::new(
            set(
                HeaderName::from_static("permissions-policy"),
                "interest-cohort=()",
            ),
            set(X_FRAME_OPTIONS, "SAMEORIGIN"),
        ),
    )
}
