//! Measure the console's round trip against the node's plain HTTP API on the same loopback.
//!
//! `nest bench` times `count` evaluations of `node.status()` through the console
//! session (WebSocket, Lua in the node), `count` evaluations of a small expression,
//! and, as the baseline, `count` plain `GET /v1/status` requests; it prints medians,
//! 99th percentiles, rates and the ratio to the baseline, as text and JSON.

use crate::run::Exit;
use crate::session::{Outcome, Session};
use std::time::Instant;

/// Evaluations made before timing starts.
const WARM_UP_CALLS: usize = 50;

/// Latencies of one kind of call.
struct Timing {
    p50_ms: f64,
    p99_ms: f64,
    per_s: f64,
}

fn percentile(sorted: &[f64], quantile: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * quantile).round() as usize]
}

/// Times `count` calls of `call`; fails at the first failing call.
fn time(count: usize, mut call: impl FnMut() -> Result<(), String>) -> Result<Timing, String> {
    let mut latencies = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        let start = Instant::now();
        call()?;
        latencies.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let total = started.elapsed();
    latencies.sort_by(f64::total_cmp);
    Ok(Timing {
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        per_s: count as f64 / total.as_secs_f64(),
    })
}

fn eval_ok(session: &mut Session, code: &str) -> Result<(), String> {
    match session.eval(code, &mut |_| {}, &mut || false) {
        Ok(Outcome::Values { .. }) => Ok(()),
        Ok(Outcome::Failed { message, .. }) => Err(format!("`{code}` failed: {message}")),
        Ok(Outcome::Abandoned) => Err(format!("`{code}` was abandoned")),
        Err(error) => Err(format!("`{code}`: {error}")),
    }
}

/// Runs the benchmark; prints text and one JSON line.
pub fn run(session: &mut Session, base_url: &str, count: usize) -> Exit {
    let count = count.max(1);
    let measured = (|| -> Result<[Timing; 3], String> {
        for _ in 0..WARM_UP_CALLS {
            eval_ok(session, "node.status()")?;
        }
        let status = time(count, || eval_ok(session, "node.status()"))?;
        let expression = time(count, || eval_ok(session, "1 + 1"))?;
        let http = time(count, || crate::http::fetch(base_url, "/v1/status").map(drop).map_err(|e| e.to_string()))?;
        Ok([status, expression, http])
    })();
    let [status, expression, http] = match measured {
        Ok(timings) => timings,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::Failed;
        }
    };
    let ratio = status.p50_ms / http.p50_ms;
    println!("nest bench: {count} calls each on {base_url}");
    println!(
        "  console node.status()   p50 {:.2} ms  p99 {:.2} ms  ({:.0}/s)  target p99 <= 10 ms",
        status.p50_ms, status.p99_ms, status.per_s
    );
    println!(
        "  console `1 + 1`         p50 {:.2} ms  p99 {:.2} ms  ({:.0} evaluations/s)",
        expression.p50_ms, expression.p99_ms, expression.per_s
    );
    println!("  baseline GET /v1/status p50 {:.2} ms  p99 {:.2} ms  ({:.0}/s)", http.p50_ms, http.p99_ms, http.per_s);
    println!("  ratio console/baseline  {ratio:.2} (p50)");
    let json = serde_json::json!({
        "calls": count,
        "console_status_p50_ms": status.p50_ms, "console_status_p99_ms": status.p99_ms, "console_status_per_s": status.per_s,
        "console_eval_p50_ms": expression.p50_ms, "console_eval_p99_ms": expression.p99_ms, "console_evals_per_s": expression.per_s,
        "http_status_p50_ms": http.p50_ms, "http_status_p99_ms": http.p99_ms, "http_status_per_s": http.per_s,
        "ratio_console_to_http_p50": ratio,
    });
    println!("{json}");
    Exit::Success
}
