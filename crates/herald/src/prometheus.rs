//! The Prometheus text exposition format, read: what `herald status` scrapes from the
//! services, and what the end-to-end tests check `/metrics` with.

use std::collections::BTreeMap;

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text exposition format (comments skipped, timestamps ignored).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            (
                &line[..open],
                parse_labels(&line[open + 1..close])?,
                &line[close + 1..],
            )
        }
        None => {
            let (name, rest) = line.split_once(' ')?;
            (name, BTreeMap::new(), rest)
        }
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.trim().to_owned(),
        labels,
        value,
    })
}

fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(labels);
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        chars.next(); // '='
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(name.trim().to_owned(), value);
    }
}

/// The samples of one scrape, with lookups.
#[derive(Debug, Default, Clone)]
pub struct Scrape(pub Vec<Sample>);

impl Scrape {
    /// Sum of every series of `name` whose labels include `filter`.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> Option<f64> {
        let mut found = None;
        for s in self.0.iter().filter(|s| s.name == name) {
            if filter
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            {
                *found.get_or_insert(0.0) += s.value;
            }
        }
        found
    }

    /// Sums of `name` grouped by label `by`.
    pub fn by(&self, name: &str, by: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in self.0.iter().filter(|s| s.name == name) {
            let key = s.labels.get(by).cloned().unwrap_or_default();
            *out.entry(key).or_insert(0.0) += s.value;
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A scrape with the text format's corners (quoted labels, `+Inf`, comments).
    pub(crate) const TEXT: &str = r#"# HELP herald_deliveries_total Delivery attempts.
# TYPE herald_deliveries_total counter
herald_deliveries_total{outcome="delivered"} 10
herald_deliveries_total{outcome="dead"} 2
herald_kafka_consumer_lag{group="g",topic="herald.events.v1",partition="0"} 3
herald_kafka_consumer_lag{group="g",topic="herald.events.v1",partition="1"} 4
herald_events_rejected_total{reason="a \"quoted\", one"} 1
herald_delivery_e2e_seconds_bucket{le="+Inf"} 10
herald_ready 1
herald_dispatcher_active 0
"#;

    #[test]
    fn parses_the_text_format() {
        let scrape = Scrape(parse(TEXT));
        assert_eq!(scrape.0.len(), 8);
        assert_eq!(scrape.sum("herald_deliveries_total", &[]), Some(12.0));
        assert_eq!(
            scrape.sum("herald_deliveries_total", &[("outcome", "dead")]),
            Some(2.0)
        );
        assert_eq!(scrape.sum("herald_kafka_consumer_lag", &[]), Some(7.0));
        assert_eq!(
            scrape.by("herald_events_rejected_total", "reason")["a \"quoted\", one"],
            1.0
        );
        assert_eq!(
            scrape.sum("herald_delivery_e2e_seconds_bucket", &[("le", "+Inf")]),
            Some(10.0)
        );
        assert_eq!(scrape.sum("herald_ready", &[]), Some(1.0));
        assert_eq!(scrape.sum("absent", &[]), None);
    }
}
