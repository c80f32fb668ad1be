//! Prometheus metrics for every service: one `metrics` recorder per
//! process, rendered at `GET /metrics`, with process metrics (RSS, CPU,
//! open file descriptors) refreshed at each scrape and a build-info gauge.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of every `*_seconds` histogram: 0.5 ms to 10 s.
const SECONDS_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into their buckets, so memory
/// stays flat however rarely Prometheus scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The Prometheus text format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

static METRICS: OnceLock<Metrics> = OnceLock::new();

pub struct Metrics {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

impl Metrics {
    /// The process's metrics, installing the recorder on first use (one
    /// per process: services started together in a test share it) and
    /// recording `<service>_build_info{version,commit}` (always 1: the
    /// labels say which build runs, for queries such as `count by (commit)`
    /// during a rolling update).
    pub fn install(service: &'static str) -> &'static Metrics {
        let metrics = METRICS.get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .expect("the buckets are not empty")
                .install_recorder()
                .expect("no other metrics recorder in this process");
            let process = metrics_process::Collector::default();
            process.describe();
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                })
                .expect("start the metrics upkeep thread");
            Metrics { handle, process }
        });
        metrics::gauge!(
            format!("{service}_build_info"),
            "version" => crate::version::VERSION,
            "commit" => crate::version::COMMIT
        )
        .set(1.0);
        metrics
    }

    /// The process's metrics, once [`Metrics::install`] has run.
    pub fn installed() -> Option<&'static Metrics> {
        METRICS.get()
    }

    /// Every metric in the Prometheus text format, process metrics fresh.
    pub fn render(&self) -> String {
        self.process.collect();
        self.handle.render()
    }
}

/// A response status's class, as the `status` label of request histograms:
/// `1xx` .. `5xx`.
pub fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}
