//! The SVG chart of `tessera bench`: per user count, server CPU per request for a session
//! check, a token check (seen before) and a token check (new token), and memory per active
//! user kept by each. Plain SVG, no script, readable without styles.

use std::fmt::Write as _;

use super::run::Level;

const BAR_COLOURS: [(&str, &str); 3] =
    [("session", "#2f6fb0"), ("token (seen)", "#e08a1e"), ("token (new each)", "#b8452f")];

/// The chart as an SVG document.
pub fn svg(levels: &[Level]) -> String {
    let (width, height) = (900.0_f64, 420.0_f64);
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">
<title>tessera bench: cost per request and memory per user, sessions vs tokens</title>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="20" y="28" font-size="16" font-weight="bold">Server CPU per request (µs, lower is better)</text>
<text x="480" y="28" font-size="16" font-weight="bold">Server memory per active user (bytes)</text>
"##
    );
    // Left: grouped bars of CPU µs per request.
    let (left, top, plot_w, plot_h) = (50.0, 60.0, 380.0, 280.0);
    let max_cpu = levels
        .iter()
        .flat_map(|l| [l.session.cpu_us, l.token_cached.cpu_us, l.token_new.cpu_us])
        .fold(1.0_f64, f64::max);
    axis(&mut out, left, top, plot_w, plot_h, max_cpu);
    let group = plot_w / levels.len().max(1) as f64;
    for (i, level) in levels.iter().enumerate() {
        let values = [level.session.cpu_us, level.token_cached.cpu_us, level.token_new.cpu_us];
        let bar = group / 4.0;
        for (j, (value, (_, colour))) in values.iter().zip(BAR_COLOURS).enumerate() {
            let h = value / max_cpu * plot_h;
            let x = left + i as f64 * group + bar * (j as f64 + 0.5);
            let _ = writeln!(
                out,
                r#"<rect x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{h:.1}" fill="{colour}"><title>{value:.1} µs</title></rect>"#,
                top + plot_h - h
            );
        }
        group_label(&mut out, left + (i as f64 + 0.5) * group, top + plot_h + 18.0, level.users);
    }
    // Right: memory per active user: a session costs its cached record; a token costs nothing.
    let (left, plot_w) = (520.0, 340.0);
    let max_mem = levels.iter().map(|l| l.memory_per_session).fold(1.0_f64, f64::max);
    axis(&mut out, left, top, plot_w, plot_h, max_mem);
    let group = plot_w / levels.len().max(1) as f64;
    for (i, level) in levels.iter().enumerate() {
        let bar = group / 3.0;
        let h = level.memory_per_session / max_mem * plot_h;
        let x = left + i as f64 * group + bar * 0.5;
        let _ = writeln!(
            out,
            r##"<rect x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{h:.1}" fill="#2f6fb0"><title>{:.0} B</title></rect>"##,
            top + plot_h - h,
            level.memory_per_session
        );
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="{bar:.1}" height="1" fill="#e08a1e"><title>0 B: a token keeps no state on the server</title></rect>"##,
            x + bar,
            top + plot_h - 1.0
        );
        group_label(&mut out, left + (i as f64 + 0.5) * group, top + plot_h + 18.0, level.users);
    }
    // Legend.
    for (k, (name, colour)) in BAR_COLOURS.iter().enumerate() {
        let x = 50.0 + k as f64 * 170.0;
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{}" width="14" height="14" fill="{colour}"/><text x="{}" y="{}">{name}</text>"#,
            height - 40.0,
            x + 20.0,
            height - 28.0
        );
    }
    out.push_str("</svg>\n");
    out
}

/// The "N users" label under a group of bars centred on `x`.
fn group_label(out: &mut String, x: f64, y: f64, users: usize) {
    let _ = writeln!(
        out,
        r#"<text x="{x:.1}" y="{y:.1}" text-anchor="middle">{} users</text>"#,
        short(users)
    );
}

fn axis(out: &mut String, left: f64, top: f64, w: f64, h: f64, max: f64) {
    let _ = writeln!(
        out,
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="#444"/><line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#444"/>"##,
        top + h,
        top + h,
        left + w,
        top + h
    );
    for tick in 0..=4 {
        let value = max * f64::from(tick) / 4.0;
        let y = top + h - h * f64::from(tick) / 4.0;
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#444">{value:.0}</text><line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            left - 6.0,
            y + 4.0,
            left + w
        );
    }
}

fn short(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}
