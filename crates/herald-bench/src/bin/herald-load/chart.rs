//! herald-load's PNG chart: a title line over two panels, 1600x700 px.
//!
//! Left, throughput over time: one line per series against seconds since the load began (a
//! flat two-point series, such as the loopback ceiling, is dashed so it does not read as a
//! measurement). Right, the end-to-end latency distribution: percentile on a "nines" scale
//! (x = -log10(1 - q), so p50, p90, p99, p99.9 are evenly spaced) against milliseconds on a
//! log scale, one line per run. A run's latencies (millions, maybe) are sorted once and sampled
//! at a few hundred points of that scale, so drawing costs the same whatever the run's size.
//! Text is drawn by plotters' pure-Rust `ab_glyph` from a TTF read at run time: no font is kept
//! in the repository and no system font library is linked.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use plotters::chart::ChartContext;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

/// One line of the throughput panel.
pub struct Series {
    /// The legend's text for this line.
    pub label: String,
    /// (x, y) points, x ascending.
    pub points: Vec<(f64, f64)>,
}

/// Everything one chart shows.
pub struct Chart {
    /// Title line at the top, e.g. "herald-load 2026-12-02 · kafka · scenario b: 10 endpoints · 4f3a2c1".
    pub title: String,
    /// Left panel, "Throughput over time": x = seconds since the load began, y = per second
    /// (e.g. series "events accepted/s", "deliveries/s", and optionally a flat "loopback ceiling" line).
    pub throughput: Vec<Series>,
    /// Right panel, "End-to-end latency distribution": each entry is a label and that run's
    /// latencies in milliseconds, unsorted (may be empty; may hold up to ~4 million values).
    pub latency: Vec<(String, Vec<f64>)>,
}

const SIZE: (u32, u32) = (1600, 700);
/// Points sampled along each latency curve: more than enough for a smooth line at this width.
const CURVE_POINTS: usize = 400;
/// The family plotters looks fonts up by; the one TTF found is registered under it.
const FAMILY: &str = "sans-serif";
const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];
const COLOURS: [(u8, u8, u8); 5] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
];

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Renders `chart` to a PNG file at `path` (about 1600x700 px). Errors (no usable font, I/O) are
/// returned, never panics.
pub fn render_png(chart: &Chart, path: &Path) -> Result<()> {
    load_font()?;
    let curves: Vec<Curve> = chart
        .latency
        .iter()
        .map(|(l, ms)| Curve::of(l, ms))
        .collect();
    // Drawn to a sibling `.png` and renamed: the encoder picks the format from the extension
    // whatever `path` is called, and nobody sees a half-written file.
    let tmp = path.with_extension(format!("{}.tmp.png", std::process::id()));
    let drawn = draw(chart, &curves, &tmp).and_then(|()| Ok(std::fs::rename(&tmp, path)?));
    if drawn.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    drawn.with_context(|| format!("writing the chart {}", path.display()))
}

fn draw(chart: &Chart, curves: &[Curve], file: &Path) -> Result<()> {
    let root = BitMapBackend::new(file, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root
        .titled(&chart.title, (FAMILY, 26))?
        .split_horizontally(SIZE.0 / 2);
    throughput_panel(&left, &chart.throughput)?;
    latency_panel(&right, curves)?;
    root.present()?;
    Ok(())
}

fn colour(i: usize) -> ShapeStyle {
    let (r, g, b) = COLOURS[i % COLOURS.len()];
    RGBColor(r, g, b).stroke_width(2)
}

/// A panel with its caption and room for the axes' labels.
fn panel<'a, 'b>(area: &'a Area<'b>, caption: &str) -> ChartBuilder<'a, 'b, BitMapBackend<'b>> {
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, (FAMILY, 22))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80);
    builder
}

/// Stretches an axis span so that a legend of `rows` lines fits above the data (the plots are
/// about 540 px high).
fn legend_room(span: f64, rows: usize) -> f64 {
    span / (1.0 - (rows as f64 * 22.0 + 24.0) / 540.0).max(0.3)
}

fn draw_legend<'a, 'b: 'a, CT: CoordTranslate>(
    c: &mut ChartContext<'a, BitMapBackend<'b>, CT>,
    at: SeriesLabelPosition,
) -> Result<()> {
    c.configure_series_labels()
        .position(at)
        .label_font((FAMILY, 16))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn finite(points: &[(f64, f64)]) -> impl Iterator<Item = (f64, f64)> + '_ {
    points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
}

fn throughput_panel(area: &Area, series: &[Series]) -> Result<()> {
    let all = || series.iter().flat_map(|s| finite(&s.points));
    let x_max = all().map(|p| p.0).fold(1.0, f64::max);
    let y_max = legend_room(all().map(|p| p.1).fold(1.0, f64::max) * 1.05, series.len());
    let mut c = panel(area, "Throughput over time").build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    c.configure_mesh()
        .x_desc("seconds since the load began")
        .y_desc("per second")
        .label_style((FAMILY, 16))
        .axis_desc_style((FAMILY, 18))
        .x_label_formatter(&|v| si(*v))
        .y_label_formatter(&|v| si(*v))
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let pts: Vec<(f64, f64)> = finite(&s.points).collect();
        let drawn = if pts.len() == 2 && pts[0].1 == pts[1].1 {
            c.draw_series(DashedLineSeries::new(pts, 10, 6, colour(i)))?
        } else {
            c.draw_series(LineSeries::new(pts, colour(i)))?
        };
        drawn
            .label(s.label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour(i)));
    }
    if all().next().is_none() {
        let text = Text::new(
            "no throughput samples",
            (x_max / 2.0, y_max / 2.0),
            (FAMILY, 20),
        );
        c.draw_series([text])?;
    }
    if !series.is_empty() {
        draw_legend(&mut c, SeriesLabelPosition::UpperRight)?;
    }
    Ok(())
}

/// One run's latency distribution, reduced to what the panel draws.
struct Curve {
    legend: String,
    /// How many finite latencies the run had.
    n: usize,
    /// (nines, ms) points from the minimum (x = 0) to the maximum (x = log10 n).
    points: Vec<(f64, f64)>,
}

impl Curve {
    fn of(label: &str, ms: &[f64]) -> Curve {
        let mut sorted: Vec<f64> = ms.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_unstable_by(f64::total_cmp);
        let legend = match sorted.last() {
            None => format!("{label}: no samples"),
            Some(max) => format!(
                "{label}: n = {}, p50 {} ms, p99 {} ms, max {} ms",
                si(sorted.len() as f64),
                ms3(quantile(&sorted, 0.5)),
                ms3(quantile(&sorted, 0.99)),
                ms3(*max)
            ),
        };
        let points = sample(&sorted, CURVE_POINTS);
        Curve {
            legend,
            n: sorted.len(),
            points,
        }
    }
}

/// Position of quantile `q` on the nines scale.
fn nines(q: f64) -> f64 {
    -(1.0 - q).log10()
}

/// The quantile at position `x` of the nines scale.
fn from_nines(x: f64) -> f64 {
    1.0 - 10f64.powf(-x)
}

/// "p50", "p90", "p99", "p99.9", ...: as many decimals as the position has nines past two.
fn nines_label(x: f64) -> String {
    let decimals = (x.ceil() as i64 - 2).max(0) as usize;
    format!("p{:.*}", decimals, from_nines(x) * 100.0)
}

/// The labelled percentiles that `n` samples support: p50 from 2 samples on, then one more nine
/// per factor of ten (p99.9 needs 1000 samples).
fn nines_ticks(n: usize) -> Vec<f64> {
    let top = (n.max(1) as f64).log10() + 1e-9;
    let p50 = std::iter::once(nines(0.5)).filter(|x| *x <= top);
    p50.chain((1..=top.floor() as u32).map(f64::from)).collect()
}

/// The latency panel's x axis: linear in nines, ticked only at the labelled percentiles
/// (plotters' `with_key_points` would lose the f64 axis's label formatter).
struct NinesAxis {
    max: f64,
    ticks: Vec<f64>,
}

impl Ranged for NinesAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;
    fn map(&self, v: &f64, (from, to): (i32, i32)) -> i32 {
        from + (f64::from(to - from) * v / self.max).round() as i32
    }
    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        let light = hint.weight().allow_light_points();
        if light {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }
    fn range(&self) -> std::ops::Range<f64> {
        0.0..self.max
    }
}

/// The value at quantile `q` of a non-empty sorted slice (the minimum at 0, the maximum at 1).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    sorted[((q * n as f64).floor().max(0.0) as usize).min(n - 1)]
}

/// `points` + 1 evenly spaced positions of the nines scale from 0 to log10(n), each with its
/// quantile's value: the last point is the maximum.
fn sample(sorted: &[f64], points: usize) -> Vec<(f64, f64)> {
    let top = (sorted.len().max(1) as f64).log10();
    if sorted.len() < 2 {
        return sorted.iter().map(|v| (0.0, *v)).collect();
    }
    (0..=points)
        .map(|i| {
            let x = top * i as f64 / points as f64;
            let q = if i == points { 1.0 } else { from_nines(x) };
            (x, quantile(sorted, q))
        })
        .collect()
}

/// The y range for values from `lo` to `hi` (both > 0): a margin, at least a factor of ten so
/// there are always a few 1-2-5 ticks, and room above for a legend of `rows` lines.
fn log_span(lo: f64, hi: f64, rows: usize) -> (f64, f64) {
    let (lo, hi) = (lo / 1.25, hi * 1.25);
    let (lo, hi) = (
        lo / (10.0 * lo / hi).max(1.0).sqrt(),
        hi * (10.0 * lo / hi).max(1.0).sqrt(),
    );
    (lo, lo * 10f64.powf(legend_room((hi / lo).log10(), rows)))
}

/// 1-2-5 ticks of each decade between `lo` and `hi` (only powers of ten past five decades).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let steps: &[f64] = if last - first > 5 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    (first..=last)
        .flat_map(|e| steps.iter().map(move |m| m * 10f64.powi(e)))
        .filter(|v| *v >= lo * 0.999 && *v <= hi * 1.001)
        .collect()
}

fn latency_panel(area: &Area, curves: &[Curve]) -> Result<()> {
    let all = || curves.iter().flat_map(|c| c.points.iter());
    let positive = || all().map(|p| p.1).filter(|v| *v > 0.0);
    let most = curves.iter().map(|c| c.n).max().unwrap_or(0);
    let x_max = all().map(|p| p.0).fold(1.0, f64::max) * 1.02;
    let (lo, hi) = match positive().reduce(f64::min) {
        Some(lo) => log_span(lo, positive().fold(lo, f64::max), curves.len()),
        None => (0.1, 100.0),
    };
    let x = NinesAxis {
        max: x_max,
        ticks: nines_ticks(most),
    };
    let y = (lo..hi).log_scale().with_key_points(log_ticks(lo, hi));
    let mut c = panel(area, "End-to-end latency distribution").build_cartesian_2d(x, y)?;
    c.configure_mesh()
        .x_desc("percentile (nines scale)")
        .y_desc("latency, ms (log scale)")
        .label_style((FAMILY, 16))
        .axis_desc_style((FAMILY, 18))
        .x_label_formatter(&|x| nines_label(*x))
        .y_label_formatter(&|v| ms_tick(*v))
        .draw()?;
    for (i, curve) in curves.iter().enumerate() {
        // A zero latency has no place on a log axis: it is drawn at the bottom edge.
        let pts = curve.points.iter().map(|(x, y)| (*x, y.max(lo)));
        c.draw_series(LineSeries::new(pts, colour(i)))?
            .label(curve.legend.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour(i)));
    }
    if most == 0 {
        let text = Text::new(
            "no latency samples",
            (x_max / 2.0, (lo * hi).sqrt()),
            (FAMILY, 20),
        );
        c.draw_series([text])?;
    }
    if !curves.is_empty() {
        // The curves start low on the left, and the room made above keeps them off the legend.
        draw_legend(&mut c, SeriesLabelPosition::UpperLeft)?;
    }
    Ok(())
}

fn ms_tick(v: f64) -> String {
    let decimals = (-v.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

fn ms3(v: f64) -> String {
    let decimals = [100.0, 10.0, 1.0].iter().take_while(|t| v < **t).count();
    format!("{v:.decimals$}")
}

/// Axis numbers without trailing zeros, thousands as "k" and millions as "M".
fn si(v: f64) -> String {
    let (scaled, suffix) = match v.abs() {
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e4 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let text = format!("{scaled:.2}");
    format!(
        "{}{suffix}",
        text.trim_end_matches('0').trim_end_matches('.')
    )
}

/// Registers a TTF with plotters once per process: plotters keeps fonts in a global table and
/// wants their bytes for the program's lifetime, so the one font found is leaked once.
fn load_font() -> Result<()> {
    static LOADED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    LOADED
        .get_or_init(find_font)
        .as_ref()
        .map(|_| ())
        .map_err(|e| anyhow!("{e}"))
}

fn find_font() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("HERALD_CHART_FONT").map(PathBuf::from) {
        // An explicit choice that fails is reported rather than quietly replaced.
        let failed = |e| format!("HERALD_CHART_FONT={}: {e}", path.display());
        return register(&path).map_err(failed).map(|()| path.clone());
    }
    let fc_match = || {
        let out = Command::new("fc-match")
            .args(["-f", "%{file}", "sans"])
            .output()
            .ok()?;
        let file = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !file.is_empty()).then(|| PathBuf::from(file))
    };
    let mut candidates = FONT_PATHS
        .iter()
        .map(PathBuf::from)
        .chain(std::iter::once_with(fc_match).flatten());
    candidates.find(|path| register(path).is_ok()).ok_or_else(|| {
        "no TTF font found for the chart: install fonts-dejavu-core (Debian) or set HERALD_CHART_FONT"
            .to_owned()
    })
}

fn register(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FAMILY, FontStyle::Normal, bytes)
        .map_err(|_| "not a TrueType/OpenType font".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn nines_scale_spaces_p90_p99_p999_evenly() {
        assert!(close(nines(0.9), 1.0) && close(nines(0.99), 2.0) && close(nines(0.999), 3.0));
        assert!(close(nines(0.5), 2f64.log10()) && close(nines(0.0), 0.0));
        for x in [0.0, 0.3, 1.0, 2.5, 4.0] {
            assert!(close(nines(from_nines(x)), x));
        }
        let labels: Vec<String> = nines_ticks(10_000).into_iter().map(nines_label).collect();
        assert_eq!(labels, ["p50", "p90", "p99", "p99.9", "p99.99"]);
    }

    #[test]
    fn ticks_stop_at_what_the_sample_count_supports() {
        assert!(nines_ticks(0).is_empty() && nines_ticks(1).is_empty());
        assert_eq!(nines_ticks(2).len(), 1);
        assert_eq!(nines_ticks(999).len(), 3); // p50, p90, p99
        assert_eq!(nines_ticks(1000).len(), 4); // and p99.9
    }

    #[test]
    fn sampling_runs_from_minimum_to_maximum() {
        let sorted: Vec<f64> = (1..=1000).map(f64::from).collect();
        let points = sample(&sorted, 100);
        assert_eq!(points.len(), 101);
        assert_eq!(points[0], (0.0, 1.0));
        assert_eq!(*points.last().unwrap(), (3.0, 1000.0));
        assert!(points
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(quantile(&sorted, 0.5), 501.0);
        assert_eq!(quantile(&sorted, 0.99), 991.0);
    }

    #[test]
    fn empty_and_tiny_runs_and_non_finite_values() {
        assert!(sample(&[], 100).is_empty());
        assert_eq!(sample(&[7.0], 100), [(0.0, 7.0)]);
        let curve = Curve::of("run", &[f64::NAN, 3.0, f64::INFINITY, 1.0]);
        assert_eq!(curve.n, 2);
        assert!(curve.points.iter().all(|p| p.1.is_finite()));
        let empty = Curve::of("run", &[]);
        assert_eq!((empty.n, empty.legend.as_str()), (0, "run: no samples"));
    }

    #[test]
    fn log_axis_has_readable_ticks() {
        let (lo, hi) = log_span(2.1, 4.9, 0);
        assert!(hi / lo >= 10.0 - 1e-9 && lo < 2.1 && hi > 4.9);
        assert!(log_span(2.1, 4.9, 3).1 > hi);
        assert_eq!(
            log_ticks(0.8, 125.0),
            [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
        assert_eq!(log_ticks(0.01, 1e5).len(), 8);
        let labels: Vec<String> = [0.05, 0.2, 1.0, 500.0].into_iter().map(ms_tick).collect();
        assert_eq!(labels, ["0.05", "0.2", "1", "500"]);
    }

    #[test]
    fn numbers_are_formatted_for_people() {
        assert_eq!(
            [si(0.0), si(2500.0), si(12_000.0), si(1.5e6)],
            ["0", "2500", "12k", "1.5M"]
        );
        assert_eq!(
            [ms3(0.1234), ms3(12.345), ms3(250.0)],
            ["0.123", "12.3", "250"]
        );
    }

    #[test]
    fn renders_an_empty_chart_to_any_file_name() {
        if let Err(e) = load_font() {
            eprintln!("skipped: {e}");
            return;
        }
        let chart = Chart {
            title: "empty".to_owned(),
            throughput: vec![Series {
                label: "none".to_owned(),
                points: vec![],
            }],
            latency: vec![("none".to_owned(), vec![])],
        };
        let dir = std::env::temp_dir().join(format!("herald-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chart-without-extension");
        render_png(&chart, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "temporary file left behind"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
