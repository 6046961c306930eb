//! PNG plots of the scale curves (`plotters`, bitmap backend). Text is drawn with `ab_glyph`
//! from DejaVu Sans read at run time (Debian's fonts-dejavu-core), so neither fontconfig nor
//! freetype is needed; `cargo xtask bench scale` installs the font package.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;

/// Where Debian puts DejaVu Sans (fonts-dejavu-core).
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Registers the font once per process (plotters keeps a `&'static` reference to its bytes).
fn font() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = std::fs::read(FONT).map_err(|e| format!("{FONT}: {e} (apt install fonts-dejavu-core)"))?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{FONT} is not a font plotters can read"))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// One curve: a label and its (x, y) points.
pub struct Series {
    /// Legend.
    pub label: String,
    /// Points, x ascending.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed-looking (points only, no line): an extrapolation, not a measurement.
    pub extrapolated: bool,
}

/// A log-log chart of `series` (x: `x_label`, y: `y_label`) into `path` (PNG, 900×560).
pub fn loglog(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<()> {
    font()?;
    let pts: Vec<(f64, f64)> =
        series.iter().flat_map(|s| s.points.iter().copied()).filter(|(x, y)| *x > 0.0 && *y > 0.0).collect();
    anyhow::ensure!(!pts.is_empty(), "{title}: nothing to plot");
    let (xmin, xmax) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), (x, _)| (a.min(*x), b.max(*x)));
    let (ymin, ymax) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), (_, y)| (a.min(*y), b.max(*y)));
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| anyhow!("{}: {e:?}", path.display());
    root.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(80)
        .build_cartesian_2d((xmin / 2.0..xmax * 2.0).log_scale(), (ymin / 3.0..ymax * 3.0).log_scale())
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .x_label_formatter(&|v| format!("{v:.0e}"))
        .y_label_formatter(&|v| if *v >= 0.01 && *v < 100_000.0 { format!("{v}") } else { format!("{v:.0e}") })
        .draw()
        .map_err(e)?;
    let colours = [
        RGBColor(0, 90, 181),
        RGBColor(220, 50, 32),
        RGBColor(26, 133, 0),
        RGBColor(140, 60, 160),
        RGBColor(230, 140, 0),
    ];
    for (k, s) in series.iter().enumerate() {
        let c = colours[k % colours.len()];
        let points: Vec<(f64, f64)> = s.points.iter().copied().filter(|(x, y)| *x > 0.0 && *y > 0.0).collect();
        if s.extrapolated {
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 5, c.stroke_width(2))))
                .map_err(e)?
                .label(format!("{} (extrapolated)", s.label))
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, c.stroke_width(2)));
        } else {
            chart
                .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
                .map_err(e)?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, c.filled()))).map_err(e)?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(e)?;
    root.present().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_is_a_png_when_the_font_is_installed() {
        if !Path::new(FONT).exists() {
            eprintln!("skipped: {FONT} missing (cargo xtask bench scale installs fonts-dejavu-core)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.png");
        let s = Series { label: "linear".into(), points: vec![(1e5, 1.0), (1e6, 10.0)], extrapolated: false };
        let x = Series { label: "beyond".into(), points: vec![(1e7, 100.0)], extrapolated: true };
        loglog(&p, "test", "entries", "seconds", &[s, x]).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(loglog(&p, "empty", "x", "y", &[]).is_err());
    }
}
