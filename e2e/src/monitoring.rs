//! The `monitoring` compose profile from outside, through Prometheus's HTTP
//! API on its published port: every target up, a counter that must reach a
//! value, an alert that fires and resolves, and every query of the Grafana
//! dashboard returning data.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context};
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::sleep;

/// How often a wait asks Prometheus again (it scrapes every 5 s).
const POLL: Duration = Duration::from_secs(1);

#[derive(Args, Debug)]
pub struct PrometheusUrl {
    /// Prometheus (compose profile `monitoring`), as published on the host.
    #[arg(
        long = "prometheus",
        env = "PROMETHEUS_URL",
        default_value = "http://127.0.0.1:9090"
    )]
    pub url: String,
}

#[derive(Subcommand, Debug)]
pub enum Check {
    /// Wait until every Prometheus scrape target is up, with exactly COUNT
    /// targets for each JOB given (job=count, repeatable).
    TargetsUp {
        #[command(flatten)]
        prometheus: PrometheusUrl,
        #[arg(long = "expect", value_parser = crate::addition)]
        expect: Vec<(String, i64)>,
    },
    /// Print the value of EXPR, a PromQL query that gives one number
    /// (nothing if it gives none).
    PromValue {
        #[command(flatten)]
        prometheus: PrometheusUrl,
        expr: String,
    },
    /// Wait until EXPR, a PromQL query that gives one number, is at least MIN.
    PromAtLeast {
        #[command(flatten)]
        prometheus: PrometheusUrl,
        #[arg(long)]
        min: f64,
        expr: String,
    },
    /// Wait until the alert NAME fires; with --resolved, until it neither
    /// fires nor is pending.
    Alert {
        #[command(flatten)]
        prometheus: PrometheusUrl,
        #[arg(long)]
        resolved: bool,
        name: String,
    },
    /// Wait until every query of every panel of the Grafana dashboard
    /// returns data (a series with a number) over the last RANGE seconds.
    PanelsHaveData {
        #[command(flatten)]
        prometheus: PrometheusUrl,
        #[arg(long, default_value = "monitoring/grafana/dashboards/voting.json")]
        dashboard: PathBuf,
        #[arg(long, default_value = "600", value_parser = crate::seconds)]
        range: Duration,
    },
}

pub async fn run(check: Check, timeout: Duration) -> anyhow::Result<()> {
    match check {
        Check::TargetsUp { prometheus, expect } => {
            let expected = expect
                .into_iter()
                .map(|(job, count)| (job, count as usize))
                .collect();
            let prometheus = Prometheus::new(&prometheus.url)?;
            let (targets, waited) = wait_targets_up(&prometheus, &expected, timeout).await?;
            let mut jobs = BTreeMap::<&str, usize>::new();
            for target in &targets {
                *jobs.entry(target.job()).or_default() += 1;
            }
            let jobs: Vec<String> = jobs.iter().map(|(job, n)| format!("{job} {n}")).collect();
            println!(
                "all {} scrape targets up after {:.1} s: {}",
                targets.len(),
                waited.as_secs_f64(),
                jobs.join(", ")
            );
        }
        Check::PromValue { prometheus, expr } => {
            if let Some(value) = Prometheus::new(&prometheus.url)?.value(&expr).await? {
                println!("{value}");
            }
        }
        Check::PromAtLeast {
            prometheus,
            min,
            expr,
        } => {
            let prometheus = Prometheus::new(&prometheus.url)?;
            let (value, waited) = wait_at_least(&prometheus, &expr, min, timeout).await?;
            println!(
                "{expr} is {value} (at least {min}) after {:.1} s",
                waited.as_secs_f64()
            );
        }
        Check::Alert {
            prometheus,
            resolved,
            name,
        } => {
            let prometheus = Prometheus::new(&prometheus.url)?;
            let waited = wait_alert(&prometheus, &name, !resolved, timeout).await?;
            println!(
                "the alert {name} {} after {:.1} s",
                if resolved { "resolved" } else { "fired" },
                waited.as_secs_f64()
            );
        }
        Check::PanelsHaveData {
            prometheus,
            dashboard,
            range,
        } => {
            let text = std::fs::read_to_string(&dashboard)
                .with_context(|| format!("read {}", dashboard.display()))?;
            let queries = dashboard_queries(&serde_json::from_str(&text)?)?;
            let prometheus = Prometheus::new(&prometheus.url)?;
            let (reports, waited) =
                wait_panels_have_data(&prometheus, &queries, range, timeout).await?;
            let panels: std::collections::BTreeSet<u64> =
                reports.iter().map(|r| r.query.panel_id).collect();
            println!(
                "all {} queries of the {} panels of {} returned data ({} series with numbers) \
                 after {:.1} s",
                reports.len(),
                panels.len(),
                dashboard.display(),
                reports.iter().map(|r| r.series_with_data).sum::<usize>(),
                waited.as_secs_f64()
            );
        }
    }
    Ok(())
}

pub struct Prometheus {
    http: reqwest::Client,
    url: String,
}

/// A scrape target as `/api/v1/targets` lists it.
#[derive(Deserialize, Clone, Debug)]
pub struct Target {
    pub labels: BTreeMap<String, String>,
    pub health: String,
    #[serde(rename = "lastError", default)]
    pub last_error: String,
}

impl Target {
    pub fn job(&self) -> &str {
        self.labels.get("job").map_or("", String::as_str)
    }

    pub fn instance(&self) -> &str {
        self.labels.get("instance").map_or("", String::as_str)
    }
}

/// An alert as `/api/v1/alerts` lists it: `pending` or `firing`.
#[derive(Deserialize, Clone, Debug)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub state: String,
}

/// One series of an instant or range query: its labels and its values
/// (NaN where Prometheus answered NaN or ±Inf).
#[derive(Clone, Debug)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub values: Vec<f64>,
}

impl Series {
    /// Whether any value is a number (histogram_quantile over no requests
    /// gives NaN: a series, but nothing to draw).
    pub fn has_data(&self) -> bool {
        self.values.iter().any(|v| v.is_finite())
    }
}

impl Prometheus {
    /// `url`: Prometheus as published on the host, e.g. `http://127.0.0.1:9090`.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Prometheus {
            http,
            url: url.trim_end_matches('/').to_string(),
        })
    }

    /// The `data` of a successful API answer.
    async fn api(&self, path: &str, form: &[(&str, String)]) -> anyhow::Result<Value> {
        let url = format!("{}/api/v1/{path}", self.url);
        let response = self
            .http
            .post(&url)
            .form(form)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("POST {url} answered {status}, not JSON"))?;
        if body["status"] != "success" {
            bail!(
                "POST {url} {form:?} answered {status}: {}",
                body["error"].as_str().unwrap_or("(no error text)")
            );
        }
        Ok(body["data"].clone())
    }

    pub async fn targets(&self) -> anyhow::Result<Vec<Target>> {
        let data = self.get("/api/v1/targets?state=active").await?;
        Ok(serde_json::from_value(data["activeTargets"].clone())?)
    }

    pub async fn alerts(&self) -> anyhow::Result<Vec<Alert>> {
        let data = self.get("/api/v1/alerts").await?;
        Ok(serde_json::from_value(data["alerts"].clone())?)
    }

    /// The `data` of the answer to a GET of the API at PATH.
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.url);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("GET {url}"))?;
        Ok(body["data"].clone())
    }

    /// An instant query, as of now.
    pub async fn query(&self, expr: &str) -> anyhow::Result<Vec<Series>> {
        let data = self.api("query", &[("query", expr.to_string())]).await?;
        series(&data)
    }

    /// A range query over the last `range`, one point every `step`.
    pub async fn query_range(
        &self,
        expr: &str,
        range: Duration,
        step: Duration,
    ) -> anyhow::Result<Vec<Series>> {
        let end = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
        let form = [
            ("query", expr.to_string()),
            ("start", format!("{:.3}", end - range.as_secs_f64())),
            ("end", format!("{end:.3}")),
            ("step", format!("{}", step.as_secs_f64())),
        ];
        let data = self.api("query_range", &form).await?;
        series(&data)
    }

    /// The value of a query that gives one number (or none: `None`).
    pub async fn value(&self, expr: &str) -> anyhow::Result<Option<f64>> {
        let result = self.query(expr).await?;
        ensure!(
            result.len() <= 1,
            "{expr} gave {} series, not one number",
            result.len()
        );
        Ok(result.first().and_then(|s| s.values.first().copied()))
    }
}

/// The series of a `vector`, `matrix` or `scalar` result.
fn series(data: &Value) -> anyhow::Result<Vec<Series>> {
    let number = |point: &Value| -> f64 {
        point[1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let labels = |item: &Value| -> BTreeMap<String, String> {
        serde_json::from_value(item["metric"].clone()).unwrap_or_default()
    };
    let result = &data["result"];
    Ok(match data["resultType"].as_str() {
        Some("vector") => result
            .as_array()
            .context("a vector result is a list")?
            .iter()
            .map(|item| Series {
                labels: labels(item),
                values: vec![number(&item["value"])],
            })
            .collect(),
        Some("matrix") => result
            .as_array()
            .context("a matrix result is a list")?
            .iter()
            .map(|item| Series {
                labels: labels(item),
                values: item["values"]
                    .as_array()
                    .map(|points| points.iter().map(number).collect())
                    .unwrap_or_default(),
            })
            .collect(),
        Some("scalar") => vec![Series {
            labels: BTreeMap::new(),
            values: vec![number(result)],
        }],
        other => bail!("unexpected result type {other:?}"),
    })
}

/// Waits until Prometheus has exactly `expected` targets per job (jobs not
/// named may have any number) and every target is up. Returns the targets.
pub async fn wait_targets_up(
    prometheus: &Prometheus,
    expected: &BTreeMap<String, usize>,
    timeout: Duration,
) -> anyhow::Result<(Vec<Target>, Duration)> {
    let started = Instant::now();
    loop {
        let targets = prometheus.targets().await.unwrap_or_default();
        let problems = target_problems(&targets, expected);
        if problems.is_empty() {
            return Ok((targets, started.elapsed()));
        }
        if started.elapsed() >= timeout {
            bail!(
                "after {timeout:?} the scrape targets are not as expected:\n  {}",
                problems.join("\n  ")
            );
        }
        sleep(POLL).await;
    }
}

/// What keeps `targets` from being `expected`, all up; empty if nothing.
pub fn target_problems(targets: &[Target], expected: &BTreeMap<String, usize>) -> Vec<String> {
    let mut problems = Vec::new();
    if targets.is_empty() {
        problems.push("no targets at all".to_string());
    }
    for (job, want) in expected {
        let have = targets.iter().filter(|t| t.job() == job).count();
        if have != *want {
            problems.push(format!("job {job} has {have} targets, expected {want}"));
        }
    }
    for target in targets.iter().filter(|t| t.health != "up") {
        problems.push(format!(
            "{} {} is {}: {}",
            target.job(),
            target.instance(),
            target.health,
            target.last_error
        ));
    }
    problems
}

/// Waits until `expr` (one number) is at least `min`; returns its value.
pub async fn wait_at_least(
    prometheus: &Prometheus,
    expr: &str,
    min: f64,
    timeout: Duration,
) -> anyhow::Result<(f64, Duration)> {
    let started = Instant::now();
    loop {
        let value = prometheus.value(expr).await?;
        if let Some(value) = value.filter(|v| *v >= min) {
            return Ok((value, started.elapsed()));
        }
        if started.elapsed() >= timeout {
            bail!(
                "after {timeout:?} {expr} is {}, expected at least {min}",
                value.map_or("absent".to_string(), |v| v.to_string())
            );
        }
        sleep(POLL).await;
    }
}

/// Waits until the alert `name` is firing (`firing`), or until it is
/// neither firing nor pending (`!firing`). Returns how long that took.
pub async fn wait_alert(
    prometheus: &Prometheus,
    name: &str,
    firing: bool,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let alerts = prometheus.alerts().await?;
        let states: Vec<&str> = alerts
            .iter()
            .filter(|a| a.labels.get("alertname").is_some_and(|n| n == name))
            .map(|a| a.state.as_str())
            .collect();
        let done = if firing {
            states.contains(&"firing")
        } else {
            states.is_empty()
        };
        if done {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= timeout {
            bail!(
                "after {timeout:?} the alert {name} is {}, expected it {}",
                if states.is_empty() {
                    "inactive".to_string()
                } else {
                    states.join(", ")
                },
                if firing { "firing" } else { "resolved" }
            );
        }
        sleep(POLL).await;
    }
}

/// One query of one dashboard panel.
#[derive(Clone, Debug, PartialEq)]
pub struct PanelQuery {
    pub panel_id: u64,
    pub panel: String,
    pub ref_id: String,
    /// As Grafana would send it, variables filled in (see `fill_variables`).
    pub expr: String,
}

/// Every query of every panel of a Grafana dashboard (rows, collapsed or
/// not, hold panels too). A panel without a query is an error.
pub fn dashboard_queries(dashboard: &Value) -> anyhow::Result<Vec<PanelQuery>> {
    fn walk(panels: &[Value], out: &mut Vec<PanelQuery>) -> anyhow::Result<()> {
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or("(untitled)").to_string();
            if panel["type"] == "row" {
                walk(
                    panel["panels"].as_array().map_or(&[][..], Vec::as_slice),
                    out,
                )?;
                continue;
            }
            let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
            ensure!(!targets.is_empty(), "panel {title:?} has no query");
            for target in targets {
                let expr = target["expr"]
                    .as_str()
                    .with_context(|| format!("a query of panel {title:?} has no expr"))?;
                out.push(PanelQuery {
                    panel_id: panel["id"].as_u64().unwrap_or(0),
                    panel: title.clone(),
                    ref_id: target["refId"].as_str().unwrap_or("?").to_string(),
                    expr: fill_variables(expr)?,
                });
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(
        dashboard["panels"]
            .as_array()
            .context("a dashboard has a list of panels")?,
        &mut out,
    )?;
    Ok(out)
}

/// The dashboard's variables as the e2e fills them in: Grafana's rate
/// interval as 1 minute, the `replica` variable as every replica. Any other
/// variable is an error (this check would not know what to put there).
pub fn fill_variables(expr: &str) -> anyhow::Result<String> {
    let filled = expr
        .replace("$__rate_interval", "1m")
        .replace("${replica}", ".+")
        .replace("$replica", ".+");
    ensure!(
        !filled.contains('$'),
        "{expr}: a variable this check does not know"
    );
    Ok(filled)
}

/// How every dashboard query fared over the last `range`.
pub struct PanelReport {
    pub query: PanelQuery,
    /// Series with at least one number.
    pub series_with_data: usize,
}

/// Asks every query until each returns data (a rate needs two scrapes of a
/// series that moved in between, a histogram quantile a rate that is not
/// 0); fails with those that still return none after `timeout`.
pub async fn wait_panels_have_data(
    prometheus: &Prometheus,
    queries: &[PanelQuery],
    range: Duration,
    timeout: Duration,
) -> anyhow::Result<(Vec<PanelReport>, Duration)> {
    let started = Instant::now();
    loop {
        let reports = panels_have_data(prometheus, queries, range).await?;
        let empty: Vec<String> = reports
            .iter()
            .filter(|r| r.series_with_data == 0)
            .map(|r| format!("{} / {}: {}", r.query.panel, r.query.ref_id, r.query.expr))
            .collect();
        if empty.is_empty() {
            return Ok((reports, started.elapsed()));
        }
        if started.elapsed() >= timeout {
            bail!(
                "after {timeout:?}, {} of {} dashboard queries return no data over the last \
                 {range:?}:\n  {}",
                empty.len(),
                reports.len(),
                empty.join("\n  ")
            );
        }
        sleep(POLL).await;
    }
}

pub async fn panels_have_data(
    prometheus: &Prometheus,
    queries: &[PanelQuery],
    range: Duration,
) -> anyhow::Result<Vec<PanelReport>> {
    let mut reports = Vec::new();
    for query in queries {
        let result = prometheus
            .query_range(&query.expr, range, Duration::from_secs(5))
            .await
            .with_context(|| format!("panel {:?} query {}", query.panel, query.ref_id))?;
        reports.push(PanelReport {
            query: query.clone(),
            series_with_data: result.iter().filter(|s| s.has_data()).count(),
        });
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DASHBOARD: &str = include_str!("../../monitoring/grafana/dashboards/voting.json");
    // The HA variant's (docker-compose.ha.yml): its e2e checks it the same way.
    const HA_DASHBOARD: &str = include_str!("../../monitoring/grafana/dashboards/postgres-ha.json");

    #[test]
    fn every_panel_of_the_dashboard_has_a_query_with_known_variables() {
        let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
        let queries = dashboard_queries(&dashboard).unwrap();
        assert!(queries.len() >= 20, "{} queries", queries.len());
        assert!(queries.iter().all(|q| !q.expr.contains('$')));
        assert!(queries
            .iter()
            .any(|q| q.expr.contains("histogram_quantile")));
    }

    #[test]
    fn every_panel_of_the_ha_dashboard_has_a_query_with_known_variables() {
        let dashboard: Value = serde_json::from_str(HA_DASHBOARD).unwrap();
        let queries = dashboard_queries(&dashboard).unwrap();
        assert!(queries.len() >= 5, "{} queries", queries.len());
        assert!(queries.iter().all(|q| q.expr.contains("patroni")));
    }

    #[test]
    fn a_panel_without_a_query_or_with_an_unknown_variable_is_refused() {
        let empty: Value = serde_json::json!({"panels": [{"type": "timeseries", "title": "x"}]});
        assert!(dashboard_queries(&empty).is_err());
        let unknown: Value = serde_json::json!({"panels": [{"type": "row", "title": "r", "panels": [
            {"type": "stat", "title": "y", "targets": [{"refId": "A", "expr": "up{job=\"$job\"}"}]}
        ]}]});
        assert!(dashboard_queries(&unknown).is_err());
    }

    #[test]
    fn variables_are_filled_in() {
        assert_eq!(
            fill_variables("rate(x{instance=~\"$replica\"}[$__rate_interval])").unwrap(),
            "rate(x{instance=~\".+\"}[1m])"
        );
    }

    #[test]
    fn results_read_back_nan_as_no_data() {
        let data = serde_json::json!({"resultType": "matrix", "result": [
            {"metric": {"job": "vote"}, "values": [[1, "NaN"], [2, "NaN"]]},
            {"metric": {"job": "worker"}, "values": [[1, "NaN"], [2, "3"]]},
        ]});
        let series = series(&data).unwrap();
        assert!(!series[0].has_data());
        assert!(series[1].has_data());
        assert_eq!(series[1].labels["job"], "worker");
    }

    #[test]
    fn targets_must_be_up_and_as_many_as_expected() {
        let target = |job: &str, health: &str| Target {
            labels: [
                ("job".to_string(), job.to_string()),
                ("instance".to_string(), "i".to_string()),
            ]
            .into(),
            health: health.to_string(),
            last_error: String::new(),
        };
        let expected: BTreeMap<String, usize> = [("vote".to_string(), 2)].into();
        let up = [
            target("vote", "up"),
            target("vote", "up"),
            target("redis", "up"),
        ];
        assert!(target_problems(&up, &expected).is_empty());
        let one_down = [target("vote", "up"), target("vote", "down")];
        assert_eq!(target_problems(&one_down, &expected).len(), 1);
        let too_few = [target("vote", "up")];
        assert_eq!(target_problems(&too_few, &expected).len(), 1);
        assert!(!target_problems(&[], &BTreeMap::new()).is_empty());
    }
}
