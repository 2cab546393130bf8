//! Small inline-SVG charts (no script, no style attributes: only presentation attributes,
//! which the portal's Content Security Policy allows), written with maud like the pages, so
//! every text and attribute value is escaped. SVG elements without content still get an end
//! tag (`{}`): inside HTML, a `<rect>` without one would swallow what follows.

use maud::{html, Markup};

/// One stacked series of a bar chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// A CSS colour (a constant of ours, never user data).
    pub color: &'static str,
    /// One value per bar.
    pub values: Vec<u64>,
}

const W: f64 = 720.0;
const H: f64 = 240.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 34.0;

/// A step for about four y-axis ticks that is 1, 2 or 5 times a power of ten.
fn tick_step(max: u64) -> u64 {
    let rough = (max as f64 / 4.0).max(1.0);
    let pow = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * pow)
        .find(|s| *s >= rough)
        .unwrap_or(rough);
    step.ceil() as u64
}

/// A coordinate or length with `decimals` digits after the point.
fn num(v: f64, decimals: usize) -> String {
    format!("{v:.decimals$}")
}

/// A text legend: a swatch, the series' name and its total.
fn legend(series: &[Series]) -> Markup {
    html! {
        ul class="legend" {
            @for s in series {
                li {
                    svg width="10" height="10" viewBox="0 0 10 10" aria-hidden="true" {
                        rect width="10" height="10" fill=(s.color) {}
                    }
                    (s.name) ": " (s.values.iter().sum::<u64>())
                }
            }
        }
    }
}

/// A stacked bar chart: one bar per `x_labels` entry (every `label_every`-th labelled), the
/// series stacked in order from the bottom, y axis from 0 with ticks, and a text legend.
pub(crate) fn stacked_bars(
    title: &str,
    y_title: &str,
    x_labels: &[String],
    label_every: usize,
    series: &[Series],
    empty: &str,
) -> Markup {
    let n = x_labels.len().max(1);
    let totals: Vec<u64> = (0..n)
        .map(|i| series.iter().filter_map(|s| s.values.get(i)).sum())
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0);
    let step = tick_step(max);
    let top_value = (max.div_ceil(step)).max(1) * step;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let y = |v: u64| TOP + plot_h - (v as f64 / top_value as f64) * plot_h;
    let ticks: Vec<u64> = (0..=top_value).step_by(step.max(1) as usize).collect();
    let mid = num(TOP + plot_h / 2.0, 1);
    let bw = plot_w / n as f64;
    html! {
        svg class="chart" viewBox={ "0 0 " (W) " " (H) } role="img" aria-label=(title) xmlns="http://www.w3.org/2000/svg" {
            // Grid lines and y labels.
            @for v in ticks {
                @let yy = num(y(v), 1);
                line x1=(LEFT) x2=(W - RIGHT) y1=(yy) y2=(yy) stroke="#e1dfdd" {}
                text x=(LEFT - 6.0) y=(num(y(v) + 4.0, 1)) text-anchor="end" { (v) }
            }
            text x="12" y=(mid) text-anchor="middle" transform={ "rotate(-90 12 " (mid) ")" } { (y_title) }
            // Bars.
            @for i in 0..n {
                @let x = LEFT + i as f64 * bw;
                @let label = x_labels.get(i).map(String::as_str).unwrap_or("");
                @for (base, s, value) in stacked(series, i) {
                    @let (y1, y0) = (y(base + value), y(base));
                    rect x=(num(x + bw * 0.1, 2)) y=(num(y1, 2)) width=(num((bw * 0.8).max(1.0), 2)) height=(num((y0 - y1).max(0.5), 2)) fill=(s.color) {
                        title { (label) " " (s.name) ": " (value) }
                    }
                }
                @if i < x_labels.len() && label_every > 0 && (i % label_every == 0 || i + 1 == n) {
                    // The last label ends at the plot's edge rather than running past it.
                    @let (lx, anchor) = if i + 1 == n { (x + bw, "end") } else { (x + bw / 2.0, "middle") };
                    text x=(num(lx, 1)) y=(num(H - BOTTOM + 16.0, 1)) text-anchor=(anchor) { (label) }
                }
            }
            // Axes.
            @let axis_y = num(TOP + plot_h, 1);
            line x1=(LEFT) x2=(LEFT) y1=(TOP) y2=(axis_y) stroke="#605e5c" {}
            line x1=(LEFT) x2=(W - RIGHT) y1=(axis_y) y2=(axis_y) stroke="#605e5c" {}
            @if max == 0 {
                text x=(num(LEFT + plot_w / 2.0, 1)) y=(mid) text-anchor="middle" { (empty) }
            }
        }
        (legend(series))
    }
}

/// The non-empty segments of bar `i`, bottom up: where each starts, its series and value.
fn stacked(series: &[Series], i: usize) -> Vec<(u64, &Series, u64)> {
    let mut base = 0u64;
    let mut out = Vec::new();
    for s in series {
        let value = s.values.get(i).copied().unwrap_or(0);
        if value > 0 {
            out.push((base, s, value));
            base += value;
        }
    }
    out
}

/// A horizontal bar chart: each item's label (HTML text, wraps on narrow screens) above a
/// bar as long as its share of the largest value, and the value.
pub(crate) fn horizontal_bars(
    title: &str,
    items: &[(String, u64)],
    color: &str,
    empty: &str,
) -> Markup {
    let max = items.iter().map(|(_, v)| *v).max().unwrap_or(1).max(1);
    html! {
        @if items.is_empty() {
            p class="empty" { (empty) }
        } @else {
            div class="hbars" role="list" aria-label=(title) {
                @for (label, v) in items {
                    div class="hrow" role="listitem" {
                        span class="hl" { (label) }
                        svg viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true" {
                            rect width="100" height="10" fill="#f3f2f1" {}
                            rect width=(num((*v as f64 / max as f64 * 100.0).max(0.5), 2)) height="10" fill=(color) {}
                        }
                        span class="hn" { (v) }
                    }
                }
            }
        }
    }
}

/// The `p`-th percentile (nearest rank) of `values`, or None when there are none.
pub(crate) fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (u64::from(p) * sorted.len() as u64).div_ceil(100).max(1) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_chart_still_has_axes_legend_and_a_sentence() {
        let labels: Vec<String> = (0..60).map(|i| format!("{i}")).collect();
        let s = vec![Series {
            name: "success".into(),
            color: "#107c10",
            values: vec![0; 60],
        }];
        let svg = stacked_bars("t", "sign-ins", &labels, 10, &s, "No sign-ins").into_string();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("No sign-ins"));
        assert!(svg.contains("success: 0"));
        assert!(!svg.contains("<rect x="), "no bars: {svg}");
        assert!(svg.contains(">0</text>"));
        let none = stacked_bars("t", "y", &[], 10, &[], "nothing").into_string();
        assert!(none.contains("nothing") && none.ends_with("</ul>"));
        assert!(horizontal_bars("t", &[], "#000", "No failures")
            .into_string()
            .contains("No failures"));
    }

    #[test]
    fn charts_escape_text_and_stack_bars() {
        let labels = vec!["<a>".to_string(), "b".to_string()];
        let s = vec![
            Series {
                name: "ok & <fine>".into(),
                color: "#107c10",
                values: vec![1, 2],
            },
            Series {
                name: "\"bad\"".into(),
                color: "#c50f1f",
                values: vec![3, 0],
            },
        ];
        let svg = stacked_bars("<script>", "y", &labels, 1, &s, "-").into_string();
        assert!(!svg.contains("<script>") && !svg.contains("<a>") && !svg.contains("<fine>"));
        assert!(svg.contains("&lt;a&gt;") && svg.contains("ok &amp; &lt;fine&gt;: 3"));
        assert!(svg.contains("&quot;bad&quot;: 3"));
        assert_eq!(svg.matches("<rect x=").count(), 3);
        let h = horizontal_bars(
            "x",
            &[("<b>50126</b>".into(), 4), ("w".into(), 1)],
            "#c50f1f",
            "-",
        )
        .into_string();
        assert!(h.contains("&lt;b&gt;50126&lt;/b&gt;") && !h.contains("<b>"));
        assert!(h.contains("width=\"100.00\"") && h.contains("width=\"25.00\""));
    }

    #[test]
    fn ticks_and_percentiles() {
        assert_eq!(tick_step(0), 1);
        assert_eq!(tick_step(4), 1);
        assert_eq!(tick_step(7), 2);
        assert_eq!(tick_step(37), 10);
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 90), Some(90));
        assert_eq!(percentile(&v, 99), Some(99));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }
}
