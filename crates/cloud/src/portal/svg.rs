//! Small inline-SVG charts (no script, no style attributes: only presentation attributes,
//! which the portal's Content Security Policy allows). Every text is escaped.

use super::layout::esc;

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

/// A text legend: a swatch, the series' name and its total.
fn legend(series: &[Series]) -> String {
    let items: String = series
        .iter()
        .map(|s| {
            format!(
                "<li><svg width=\"10\" height=\"10\" viewBox=\"0 0 10 10\" aria-hidden=\"true\"><rect width=\"10\" height=\"10\" fill=\"{}\"/></svg>{}: {}</li>",
                esc(s.color),
                esc(&s.name),
                s.values.iter().sum::<u64>()
            )
        })
        .collect();
    format!("<ul class=\"legend\">{items}</ul>")
}

/// A stacked bar chart: one bar per `x_labels` entry (every `label_every`-th labelled), the
/// series stacked in order from the bottom, y axis from 0 with ticks, and a text legend.
pub fn stacked_bars(
    title: &str,
    y_title: &str,
    x_labels: &[String],
    label_every: usize,
    series: &[Series],
    empty: &str,
) -> String {
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
    let mut out = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        esc(title)
    );
    // Grid lines and y labels.
    let mut v = 0;
    while v <= top_value {
        let yy = y(v);
        out.push_str(&format!(
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#e1dfdd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>",
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0
        ));
        v += step;
    }
    out.push_str(&format!(
        "<text x=\"12\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 12 {:.1})\">{}</text>",
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        esc(y_title)
    ));
    // Bars.
    let bw = plot_w / n as f64;
    for i in 0..n {
        let x = LEFT + i as f64 * bw;
        let mut base = 0u64;
        for s in series {
            let value = s.values.get(i).copied().unwrap_or(0);
            if value == 0 {
                continue;
            }
            let (y1, y0) = (y(base + value), y(base));
            out.push_str(&format!(
                "<rect x=\"{:.2}\" y=\"{y1:.2}\" width=\"{:.2}\" height=\"{:.2}\" fill=\"{}\"><title>{} {}: {value}</title></rect>",
                x + bw * 0.1,
                (bw * 0.8).max(1.0),
                (y0 - y1).max(0.5),
                esc(s.color),
                esc(x_labels.get(i).map(String::as_str).unwrap_or("")),
                esc(&s.name),
            ));
            base += value;
        }
        if let Some(label) = x_labels.get(i) {
            if label_every > 0 && (i % label_every == 0 || i + 1 == n) {
                // The last label ends at the plot's edge rather than running past it.
                let (lx, anchor) = if i + 1 == n {
                    (x + bw, "end")
                } else {
                    (x + bw / 2.0, "middle")
                };
                out.push_str(&format!(
                    "<text x=\"{lx:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
                    H - BOTTOM + 16.0,
                    esc(label)
                ));
            }
        }
    }
    // Axes.
    out.push_str(&format!(
        "<line x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#605e5c\"/><line x1=\"{LEFT}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#605e5c\"/>",
        TOP + plot_h,
        W - RIGHT,
        TOP + plot_h,
        TOP + plot_h
    ));
    if max == 0 {
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0,
            esc(empty)
        ));
    }
    out.push_str("</svg>");
    out.push_str(&legend(series));
    out
}

/// A horizontal bar chart: each item's label (HTML text, wraps on narrow screens) above a
/// bar as long as its share of the largest value, and the value.
pub fn horizontal_bars(title: &str, items: &[(String, u64)], color: &str, empty: &str) -> String {
    if items.is_empty() {
        return format!("<p class=\"empty\">{}</p>", esc(empty));
    }
    let max = items.iter().map(|(_, v)| *v).max().unwrap_or(1).max(1);
    let rows: String = items
        .iter()
        .map(|(label, v)| {
            let w = (*v as f64 / max as f64 * 100.0).max(0.5);
            format!(
                "<div class=\"hrow\" role=\"listitem\"><span class=\"hl\">{}</span>\
<svg viewBox=\"0 0 100 10\" preserveAspectRatio=\"none\" aria-hidden=\"true\"><rect width=\"100\" height=\"10\" fill=\"#f3f2f1\"/><rect width=\"{w:.2}\" height=\"10\" fill=\"{}\"/></svg>\
<span class=\"hn\">{v}</span></div>",
                esc(label),
                esc(color)
            )
        })
        .collect();
    format!(
        "<div class=\"hbars\" role=\"list\" aria-label=\"{}\">{rows}</div>",
        esc(title)
    )
}

/// The `p`-th percentile (nearest rank) of `values`, or None when there are none.
pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
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
        let svg = stacked_bars("t", "sign-ins", &labels, 10, &s, "No sign-ins");
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("No sign-ins"));
        assert!(svg.contains("success: 0"));
        assert!(!svg.contains("<rect x="), "no bars: {svg}");
        assert!(svg.contains(">0</text>"));
        let none = stacked_bars("t", "y", &[], 10, &[], "nothing");
        assert!(none.contains("nothing") && none.ends_with("</ul>"));
        assert!(horizontal_bars("t", &[], "#000", "No failures").contains("No failures"));
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
        let svg = stacked_bars("<script>", "y", &labels, 1, &s, "-");
        assert!(!svg.contains("<script>") && !svg.contains("<a>") && !svg.contains("<fine>"));
        assert!(svg.contains("&lt;a&gt;") && svg.contains("ok &amp; &lt;fine&gt;: 3"));
        assert!(svg.contains("&quot;bad&quot;: 3"));
        assert_eq!(svg.matches("<rect x=").count(), 3);
        let h = horizontal_bars(
            "x",
            &[("<b>50126</b>".into(), 4), ("w".into(), 1)],
            "#c50f1f",
            "-",
        );
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
