//! Temporary: the Rocket request timer, until result moves to axum.
use kit::metrics::status_class;
use rocket::fairing::{Fairing, Info, Kind};
use rocket::{Data, Request, Response};
use std::time::Instant;
/// Times every request of a Rocket service into the histogram `metric`,
/// labelled by route name (or `unmatched`) and status class.
pub struct RequestTimer {
    pub metric: &'static str,
}

#[rocket::async_trait]
impl Fairing for RequestTimer {
    fn info(&self) -> Info {
        Info {
            name: "request timer",
            kind: Kind::Request | Kind::Response,
        }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        request.local_cache(Instant::now);
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        let started = request.local_cache(Instant::now);
        let route = request
            .route()
            .and_then(|r| r.name.clone())
            .unwrap_or("unmatched".into());
        let class = status_class(response.status().code);
        metrics::histogram!(self.metric, "route" => route, "status" => class)
            .record(started.elapsed().as_secs_f64());
    }
}
