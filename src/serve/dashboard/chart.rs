//! The history's chart of reconcile durations over time, as inline SVG: one dot per reconcile
//! (red when it failed), on a time axis, with the scale's top value. Built from numbers only,
//! so it is safe to put into the page as markup.

use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 160.0;
const PAD: f64 = 28.0;

/// Markup that is safe to embed: it holds no text from outside.
pub struct Svg(pub String);

impl std::fmt::Display for Svg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// (unix start, duration ms, ok) per reconcile, in any order.
pub fn durations(points: &[(f64, u64, bool)]) -> Svg {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="reconcile durations over time" xmlns="http://www.w3.org/2000/svg">"#
    );
    if points.is_empty() {
        out.push_str(r#"<text x="20" y="80" class="axis">no reconciles yet</text></svg>"#);
        return Svg(out);
    }
    let (t0, t1) = points.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let top = nice(points.iter().map(|p| p.1).max().unwrap_or(1).max(1) as f64);
    let x = |t: f64| if t1 > t0 { PAD + (t - t0) / (t1 - t0) * (W - 2.0 * PAD) } else { W / 2.0 };
    let y = |ms: f64| H - PAD - ms / top * (H - 2.0 * PAD);
    let _ = write!(
        out,
        r#"<line x1="{PAD}" y1="{b}" x2="{r}" y2="{b}" class="axis"/><line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{b}" class="axis"/>"#,
        b = H - PAD,
        r = W - PAD
    );
    let _ = write!(out, r#"<text x="{}" y="{}" class="axis">{}</text>"#, PAD + 4.0, PAD - 8.0, label(top));
    let _ = write!(out, r#"<text x="{}" y="{}" class="axis">0</text>"#, PAD - 14.0, H - PAD + 4.0);
    let mut sorted: Vec<_> = points.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let line: Vec<String> = sorted.iter().map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1 as f64))).collect();
    let _ = write!(out, r#"<polyline class="trend" points="{}"/>"#, line.join(" "));
    for p in &sorted {
        let _ = write!(
            out,
            r#"<circle cx="{:.1}" cy="{:.1}" r="3" class="{}"><title>{}</title></circle>"#,
            x(p.0),
            y(p.1 as f64),
            if p.2 { "ok" } else { "failed" },
            label(p.1 as f64)
        );
    }
    out.push_str("</svg>");
    Svg(out)
}

/// The next round number at or above `ms`: 1, 2 or 5 times a power of ten.
fn nice(ms: f64) -> f64 {
    let p = 10f64.powf(ms.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * p).find(|v| *v >= ms).unwrap_or(10.0 * p)
}

fn label(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reconcile_is_a_dot_and_failures_are_marked() {
        let svg = durations(&[(100.0, 800, true), (50.0, 2400, false), (200.0, 300, true)]).0;
        assert_eq!(svg.matches("<circle").count(), 3);
        assert_eq!(svg.matches(r#"class="failed""#).count(), 1);
        // The scale's top is the round number above the slowest.
        assert!(svg.contains(">5.0 s</text>"), "{svg}");
        // Oldest on the left: the polyline goes from the first (t=50) at the left edge.
        assert!(svg.contains(&format!(r#"points="{PAD:.1},"#)), "{svg}");
    }

    #[test]
    fn an_empty_history_says_so() {
        assert!(durations(&[]).0.contains("no reconciles yet"));
        assert_eq!(nice(730.0), 1000.0);
        assert_eq!(nice(1.0), 1.0);
        assert_eq!(nice(150.0), 200.0);
    }
}
