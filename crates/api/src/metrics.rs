//! Request counters and latency histograms in the Prometheus text format.
//!
//! Labels are the route *template* (`/api/v1/users/{id}/duties`), never the
//! path itself, so no identifier ends up in a metric.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut map = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let s = map
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default();
        s.count += 1;
        s.sum += seconds;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                s.buckets[i] += 1;
            }
        }
    }

    pub fn render(&self, audit_records: u64, signed_tree_size: u64) -> String {
        let mut out = String::new();
        let map = self.series.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str("# HELP civic_http_requests_total HTTP requests by method, route template and status.\n");
        out.push_str("# TYPE civic_http_requests_total counter\n");
        for ((m, r, st), s) in map.iter() {
            let _ = writeln!(
                out,
                "civic_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{st}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP civic_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE civic_http_request_duration_seconds histogram\n");
        for ((m, r, st), s) in map.iter() {
            let labels = format!("method=\"{m}\",route=\"{r}\",status=\"{st}\"");
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "civic_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "civic_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "civic_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "civic_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out.push_str("# HELP civic_audit_records Records in the audit ledger.\n# TYPE civic_audit_records gauge\n");
        let _ = writeln!(out, "civic_audit_records {audit_records}");
        out.push_str("# HELP civic_audit_signed_tree_size Size of the newest signed tree head.\n# TYPE civic_audit_signed_tree_size gauge\n");
        let _ = writeln!(out, "civic_audit_signed_tree_size {signed_tree_size}");
        out.push_str("# HELP civic_build_info Build of the hub.\n# TYPE civic_build_info gauge\n");
        let _ = writeln!(
            out,
            "civic_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.observe("GET", "/healthz", 200, 0.003);
        m.observe("GET", "/healthz", 200, 0.2);
        let text = m.render(5, 4);
        assert!(text.contains(
            "civic_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2"
        ));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("le=\"0.25\"} 2"));
        assert!(text.contains("civic_audit_records 5"));
    }
}
