//! `/metrics`, `/readyz` and friends: plain GETs, Prometheus text, `promtool`.

use std::process::{Command, Stdio};
use std::time::Duration;

/// `GET url`: status and body text; `None` when nothing answers.
pub fn http_get(url: &str) -> Option<(u16, String)> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let resp = client.get(url).send().ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().unwrap_or_default()))
}

/// The sum of every sample of `name` whose labels include all of `labels`, from Prometheus
/// text (parsed by the same code as `herald status`); `None` when no sample matches.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    herald::prometheus::Scrape(herald::prometheus::parse(text)).sum(name, labels)
}

/// Runs `promtool check metrics` on `text`. `None` (after a loud message) when promtool is
/// not installed; CI installs it (`apt-get install prometheus`, see deploy/check.sh).
pub fn promtool_check_metrics(text: &str) -> Option<Result<(), String>> {
    use std::io::Write as _;
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) => {
            eprintln!(
                "\n!!!!! promtool not found ({err}): `promtool check metrics` SKIPPED. \
                 Install it with `apt-get install prometheus` (deploy/check.sh does). !!!!!\n"
            );
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    })
}
