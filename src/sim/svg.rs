//! The storm's picture (`--svg`): machines in each phase over time, and the CDF
//! of total boot time. Plain SVG written directly: a few polylines, axes and
//! labels need no plotting library, and no font has to be found at run time.

use std::fmt::Write as _;
use std::time::Duration;

use super::report::{timeline, Outcome, Report, PHASES};

const W: f64 = 960.0;
const PANEL_H: f64 = 330.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 75.0;
const GAP: f64 = 80.0;
const COLORS: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#17becf", "#bcbd22",
];

/// The picture of `report` and its machines.
pub fn render(report: &Report, outcomes: &[Outcome], elapsed: Duration) -> String {
    let mut s = String::new();
    let height = TOP + 2.0 * PANEL_H + GAP + 50.0;
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="22" font-size="15">rackboot storm: {} machines, {} booted, {} failed (seed {}, until {})</text>"#,
        report.machines, report.booted, report.failed, report.seed, report.until
    );
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="40" font-size="11" fill="#555">against {}</text>"##,
        escape(&report.target)
    );
    phases_panel(&mut s, outcomes, elapsed, TOP);
    cdf_panel(&mut s, outcomes, TOP + PANEL_H + GAP);
    s.push_str("</svg>\n");
    s
}

fn phases_panel(s: &mut String, outcomes: &[Outcome], elapsed: Duration, top: f64) {
    let rows = timeline(outcomes, elapsed, 300);
    let names: Vec<&str> = PHASES
        .iter()
        .map(|p| p.name())
        .chain(["booted", "failed"])
        .collect();
    let x_max = elapsed.as_secs_f64().max(1e-3);
    let y_max = rows
        .iter()
        .flat_map(|(_, r)| r.iter().copied())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    axes(
        s,
        top,
        x_max,
        y_max,
        "seconds since the first power-on",
        "machines",
    );
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="{}" font-size="13">Machines in each phase over time</text>"#,
        top - 8.0
    );
    let mut legend = 0;
    for (col, name) in names.iter().enumerate() {
        if rows.iter().all(|(_, r)| r[col] == 0) {
            continue;
        }
        let points: Vec<String> = rows
            .iter()
            .map(|(t, r)| {
                let (x, y) = place(top, *t / x_max, f64::from(r[col]) / y_max);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let color = COLORS[col % COLORS.len()];
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{}"/>"#,
            points.join(" ")
        );
        let ly = top + 14.0 + 16.0 * f64::from(legend);
        let lx = W - RIGHT + 15.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{name}</text>"#,
            lx + 18.0,
            lx + 24.0,
            ly + 4.0
        );
        legend += 1;
    }
}

fn cdf_panel(s: &mut String, outcomes: &[Outcome], top: f64) {
    let mut totals: Vec<f64> = outcomes
        .iter()
        .filter(|o| o.failure.is_none())
        .filter_map(|o| o.finished.map(|d| d.as_secs_f64()))
        .collect();
    totals.sort_by(f64::total_cmp);
    let x_max = totals.last().copied().unwrap_or(1.0).max(1e-3);
    axes(
        s,
        top,
        x_max,
        100.0,
        "total boot time, seconds (power-on to the last phase)",
        "% of machines booted",
    );
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="{}" font-size="13">CDF of total boot time ({} of {} machines booted)</text>"#,
        top - 8.0,
        totals.len(),
        outcomes.len()
    );
    if totals.is_empty() {
        return;
    }
    let n = outcomes.len().max(1) as f64;
    let mut points = vec![place(top, 0.0, 0.0)];
    for (k, t) in totals.iter().enumerate() {
        let x = t / x_max;
        points.push(place(top, x, k as f64 / n));
        points.push(place(top, x, (k + 1) as f64 / n));
    }
    let text: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    let _ = writeln!(
        s,
        r#"<polyline fill="none" stroke="{}" stroke-width="1.8" points="{}"/>"#,
        COLORS[0],
        text.join(" ")
    );
}

/// Pixel position of fractions (`fx`, `fy`) of a panel whose top is `top`.
fn place(top: f64, fx: f64, fy: f64) -> (f64, f64) {
    let plot_w = W - LEFT - RIGHT;
    (LEFT + fx * plot_w, top + PANEL_H - fy * PANEL_H)
}

fn axes(s: &mut String, top: f64, x_max: f64, y_max: f64, x_label: &str, y_label: &str) {
    let (x0, y0) = place(top, 0.0, 0.0);
    let (x1, y1) = place(top, 1.0, 1.0);
    let _ = writeln!(
        s,
        r##"<path d="M{x0},{y1} V{y0} H{x1}" fill="none" stroke="#333"/>"##
    );
    for k in 0..=5 {
        let f = f64::from(k) / 5.0;
        let (x, _) = place(top, f, 0.0);
        let (_, y) = place(top, 0.0, f);
        let _ = writeln!(
            s,
            r##"<line x1="{x}" y1="{y0}" x2="{x}" y2="{}" stroke="#333"/><text x="{x}" y="{}" text-anchor="middle">{}</text>"##,
            y0 + 5.0,
            y0 + 18.0,
            tick(f * x_max)
        );
        let _ = writeln!(
            s,
            r##"<line x1="{}" y1="{y}" x2="{x0}" y2="{y}" stroke="#333"/><line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            x0 - 5.0,
            x0 - 8.0,
            y + 4.0,
            tick(f * y_max)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (x0 + x1) / 2.0,
        y0 + 36.0,
        escape(x_label)
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(18,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
        (y0 + y1) / 2.0,
        escape(y_label)
    );
}

fn tick(v: f64) -> String {
    if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::dhcp::Identity;
    use crate::sim::machine::{Ended, Phase};
    use crate::sim::report::Run;

    #[test]
    fn the_picture_has_a_line_per_phase_seen_and_the_cdf() {
        let o: Vec<Outcome> = (1..=20u64)
            .map(|k| Outcome {
                identity: Identity::IpxeBios,
                family: crate::sim::fleet::Family::V4,
                start: Duration::from_millis(k * 5),
                ended: vec![Ended {
                    phase: Phase::Dhcp,
                    at: Duration::from_millis(100 * k),
                    bytes: 0,
                    retries: 0,
                }],
                finished: Some(Duration::from_millis(100 * k)),
                failure: None,
            })
            .collect();
        let elapsed = Duration::from_secs(3);
        let run = Run {
            seed: 1,
            target: "a <test>".into(),
            until: Phase::Dhcp,
            elapsed,
            storm_cpu: Duration::ZERO,
            server_cpu: None,
        };
        let svg = render(&Report::new(&run, &o), &o, elapsed);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt;test&gt;"));
        // dhcp and booted lines, and the CDF.
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains(">dhcp</text>") && svg.contains(">booted</text>"));
        assert!(!svg.contains(">failed</text>"));
    }
}
