//! Small SVG charts for reports: grouped bars and lines, with axes, ticks and a legend.

use std::fmt::Write as _;

const WIDTH: f64 = 820.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 270.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 44.0;
const COLOURS: [&str; 6] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The frame: title, y axis from 0 to `y_max` with five ticks, and the legend of `series`.
fn frame(title: &str, y_label: &str, y_max: f64, series: &[&str]) -> String {
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n",
        (LEFT + WIDTH - RIGHT) / 2.0,
        escape(title)
    );
    let plot_h = HEIGHT - TOP - BOTTOM;
    for i in 0..=5 {
        let v = y_max * f64::from(i) / 5.0;
        let y = TOP + plot_h * (1.0 - f64::from(i) / 5.0);
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v:.2}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">{}</text>",
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        escape(y_label)
    );
    for (i, name) in series.iter().enumerate() {
        let y = TOP + 10.0 + 20.0 * i as f64;
        let x = WIDTH - RIGHT + 14.0;
        let _ = writeln!(
            s,
            "<rect x=\"{x}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            y - 10.0,
            COLOURS[i % COLOURS.len()],
            x + 18.0,
            y,
            escape(name)
        );
    }
    s
}

fn nice_max(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.fold(0.0f64, f64::max);
    if max <= 0.0 {
        1.0
    } else {
        (max * 1.1 * 10.0).ceil() / 10.0
    }
}

/// Bars of `series` (name, one value per group) side by side within each group.
pub fn grouped_bars(title: &str, y_label: &str, groups: &[String], series: &[(String, Vec<f64>)]) -> String {
    let y_max = nice_max(series.iter().flat_map(|(_, v)| v.iter().copied()));
    let names: Vec<&str> = series.iter().map(|(n, _)| n.as_str()).collect();
    let mut s = frame(title, y_label, y_max, &names);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let group_w = plot_w / groups.len().max(1) as f64;
    let bar_w = group_w * 0.8 / series.len().max(1) as f64;
    for (g, group) in groups.iter().enumerate() {
        let x0 = LEFT + group_w * g as f64 + group_w * 0.1;
        for (k, (_, values)) in series.iter().enumerate() {
            let v = values.get(g).copied().unwrap_or(0.0);
            let h = plot_h * v / y_max;
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{v:.4}</title></rect>",
                x0 + bar_w * k as f64,
                TOP + plot_h - h,
                bar_w * 0.95,
                COLOURS[k % COLOURS.len()]
            );
        }
        let _ = writeln!(s, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>", x0 + group_w * 0.4, HEIGHT - BOTTOM + 18.0, escape(group));
    }
    s.push_str("</svg>\n");
    s
}

/// Lines of `series` (name, one value per x from 0), x labelled `x_label`.
pub fn lines(title: &str, x_label: &str, y_label: &str, series: &[(String, Vec<f64>)]) -> String {
    let points: Vec<(String, Vec<(f64, f64)>)> =
        series.iter().map(|(name, v)| (name.clone(), v.iter().enumerate().map(|(i, &y)| (i as f64, y)).collect())).collect();
    xy_lines(title, x_label, y_label, &points, &[])
}

/// Lines of `series` (name, (x, y) points in x order) over an x axis from the smallest x to the
/// largest, with `levels` (name, y: chance, a baseline) drawn dashed across the plot.
pub fn xy_lines(title: &str, x_label: &str, y_label: &str, series: &[(String, Vec<(f64, f64)>)], levels: &[(String, f64)]) -> String {
    let y_max = nice_max(series.iter().flat_map(|(_, v)| v.iter().map(|p| p.1)).chain(levels.iter().map(|l| l.1)));
    let names: Vec<&str> = series.iter().map(|(n, _)| n.as_str()).chain(levels.iter().map(|(n, _)| n.as_str())).collect();
    let mut s = frame(title, y_label, y_max, &names);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let xs = || series.iter().flat_map(|(_, v)| v.iter().map(|p| p.0));
    let (x_min, x_max) = (xs().fold(f64::INFINITY, f64::min), xs().fold(f64::NEG_INFINITY, f64::max));
    let (x_min, span) = if x_min.is_finite() && x_max > x_min { (x_min, x_max - x_min) } else { (0.0, 1.0) };
    let x_of = |x: f64| LEFT + plot_w * (x - x_min) / span;
    let y_of = |y: f64| TOP + plot_h * (1.0 - y / y_max);
    for (k, (_, values)) in series.iter().enumerate() {
        let path: Vec<String> = values.iter().map(|&(x, y)| format!("{:.1},{:.1}", x_of(x), y_of(y))).collect();
        let _ = writeln!(s, "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>", COLOURS[k % COLOURS.len()], path.join(" "));
    }
    for (k, (_, y)) in levels.iter().enumerate() {
        let colour = COLOURS[(series.len() + k) % COLOURS.len()];
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"{colour}\" stroke-dasharray=\"6 4\"/>",
            y_of(*y),
            WIDTH - RIGHT
        );
    }
    for i in 0..=5 {
        let x = x_min + span * f64::from(i) / 5.0;
        let label = if span >= 10.0 { format!("{x:.0}") } else { format!("{x:.1}") };
        let _ = writeln!(s, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>", x_of(x), HEIGHT - BOTTOM + 16.0);
    }
    let _ = writeln!(s, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>", LEFT + plot_w / 2.0, HEIGHT - 8.0, escape(x_label));
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_one_shape_per_value() {
        let bars = grouped_bars("P", "precision", &["m1".into(), "m3".into()], &[("a".into(), vec![0.5, 0.25]), ("b<c".into(), vec![1.0, 0.0])]);
        assert!(bars.starts_with("<svg") && bars.trim_end().ends_with("</svg>"));
        assert_eq!(bars.matches("<title>").count(), 4);
        assert!(bars.contains("b&lt;c"));
        let l = lines("C", "step", "share", &[("x".into(), vec![0.1, 0.2, 0.3])]);
        assert_eq!(l.matches("<polyline").count(), 1);
        let curve = xy_lines("L", "examples", "accuracy", &[("a".into(), vec![(0.0, 0.3), (500.0, 0.6)])], &[("chance".into(), 1.0 / 3.0)]);
        assert_eq!((curve.matches("<polyline").count(), curve.matches("stroke-dasharray").count()), (1, 1));
        assert!(curve.contains(">500</text>") && curve.contains(">chance</text>"), "{curve}");
    }
}
