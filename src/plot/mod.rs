//! Figures: PNG and SVG drawn by plotters with an embedded font (DejaVu Sans, so no system
//! fonts are needed), each with the numbers behind it as CSV next to it, all written
//! atomically.

pub mod analyze;
pub mod lattice;
pub mod mutual_information;
pub mod response;
pub mod rg_flow;
pub mod sampling;
pub mod training;

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use thiserror::Error;

use crate::io::write_atomic;

const FONT_NAME: &str = "sans-serif";

/// The title and y label of every chart of the relative error of the variational free energy
/// (training curves, a sweep's Fig. S1).
pub const REL_ERROR_TITLE: &str = "Relative error of the variational free energy";
pub const REL_ERROR_LABEL: &str = "(F - F_exact) / |F_exact|";
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const SIZE: (u32, u32) = (900, 600);

/// Line colours: matplotlib's "tab10", distinct on white.
const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

#[derive(Debug, Error)]
pub enum PlotError {
    #[error("{0}")]
    Input(String),
    #[error("drawing {what}: {message}")]
    Draw { what: String, message: String },
    #[error("writing {path}: {message}")]
    Io { path: String, message: String },
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(FONT_NAME, FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the embedded font is a valid TrueType file"));
    });
}

/// One named line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// One error bar (a standard error) per point, or none at all.
    pub errors: Vec<f64>,
}

/// A chart of lines, linear in x, linear or logarithmic in y.
#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_y: bool,
    pub lines: Vec<Line>,
}

/// The three files of a figure: `stem`.png, `stem`.svg and `stem`.csv.
pub fn outputs(stem: &Path) -> [PathBuf; 3] {
    ["png", "svg", "csv"].map(|e| stem.with_extension(e))
}

/// A figure drawn the same way on any backend, with the numbers behind it as CSV.
pub trait Figure {
    fn title(&self) -> &str;
    /// Its size in pixels, or why there is nothing to draw.
    fn size(&self) -> Result<(u32, u32), PlotError>;
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), PlotError>;
    fn csv(&self) -> String;

    /// Writes `stem`.png, `stem`.svg and `stem`.csv, each atomically.
    fn save(&self, stem: &Path) -> Result<(), PlotError> {
        register_font();
        let size = self.size()?;
        let mut rgb = vec![0u8; (size.0 * size.1 * 3) as usize];
        self.draw(BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area())?;
        let mut svg = String::new();
        self.draw(SVGBackend::with_string(&mut svg, size).into_drawing_area())?;
        let mut png = Vec::new();
        image::RgbImage::from_raw(size.0, size.1, rgb)
            .expect("the buffer has the image's size")
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| PlotError::Draw {
                what: self.title().to_string(),
                message: e.to_string(),
            })?;
        let [png_path, svg_path, csv_path] = outputs(stem);
        for (path, bytes) in [
            (png_path, png.as_slice()),
            (svg_path, svg.as_bytes()),
            (csv_path, self.csv().as_bytes()),
        ] {
            write_atomic(&path, bytes).map_err(|e| PlotError::Io {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// [`Figure::save`] as `dir/name` (creating `dir`); returns the files written.
    fn save_into(&self, dir: &Path, name: &str) -> Result<Vec<PathBuf>, PlotError> {
        std::fs::create_dir_all(dir).map_err(|e| PlotError::Io {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        let stem = dir.join(name);
        self.save(&stem)?;
        Ok(outputs(&stem).to_vec())
    }
}

impl Figure for LineChart {
    fn title(&self) -> &str {
        &self.title
    }

    fn size(&self) -> Result<(u32, u32), PlotError> {
        if !self
            .lines
            .iter()
            .flat_map(|l| &l.points)
            .any(|p| self.shown(*p))
        {
            let why = if self.log_y {
                " (no finite value above zero for its log scale)"
            } else {
                " (no finite value)"
            };
            return Err(PlotError::Input(format!(
                "{}: nothing to plot{why}",
                self.title
            )));
        }
        Ok(SIZE)
    }

    /// `label,x,y,err`, one row per point, err empty without error bars.
    fn csv(&self) -> String {
        let mut csv = String::from("label,x,y,err\n");
        for l in &self.lines {
            for (i, (x, y)) in l.points.iter().enumerate() {
                let err = l.errors.get(i).map_or(String::new(), |e| e.to_string());
                csv.push_str(&format!("{},{x},{y},{err}\n", l.label.replace(',', ";")));
            }
        }
        csv
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let fail = |e: &dyn std::fmt::Display| PlotError::Draw {
            what: self.title.clone(),
            message: e.to_string(),
        };
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let points: Vec<(f64, f64)> = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().copied())
            .filter(|p| self.shown(*p))
            .collect();
        let bounds = |f: fn(&(f64, f64)) -> f64| {
            points
                .iter()
                .map(f)
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(v), hi.max(v))
                })
        };
        let (x0, x1) = bounds(|p| p.0);
        let (y0, y1) = bounds(|p| p.1);
        let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
        // Enough decimals to tell the ticks apart: steps are whole, temperatures are not.
        let decimals = |span: f64| (1.0 - span.log10().floor()).clamp(0.0, 6.0) as usize;
        let x_label = Ticks::Fixed(decimals(x1 - x0).min(4));
        let mut chart = ChartBuilder::on(&root);
        chart
            .caption(&self.title, (FONT_NAME, 24))
            .margin(16)
            .margin_right(40)
            .x_label_area_size(48)
            .y_label_area_size(80);
        if self.log_y {
            // Whole decades, so the axis always has labelled ticks (just beyond them: 10^-2
            // computes above 0.01, which would drop its tick), from 1 to MAX_DECADES of them and
            // within the normal doubles: plotters never returns from a log axis that reaches 0
            // or infinity, nor, in practice, from one of hundreds of decades.
            let top = (y1 * 1.0001).log10().ceil().clamp(-299.0, 301.0);
            let bottom = y0
                .log10()
                .floor()
                .clamp((top - MAX_DECADES).max(-300.0), top - 1.0);
            let (y0, y1) = (0.999 * 10f64.powf(bottom), 1.001 * 10f64.powf(top));
            let mut c = chart
                .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                .map_err(|e| fail(&e))?;
            self.finish(&mut c, x_label, Ticks::Significant)
                .map_err(|e| fail(&e))?;
        } else {
            let pad = 0.05 * (y1 - y0).max(1e-12);
            let mut c = chart
                .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
                .map_err(|e| fail(&e))?;
            let y_label = Ticks::Fixed(decimals((y1 - y0).max(1e-12)));
            self.finish(&mut c, x_label, y_label)
                .map_err(|e| fail(&e))?;
        }
        root.present().map_err(|e| fail(&e))
    }
}

/// How an axis writes its tick values.
#[derive(Debug, Clone, Copy)]
enum Ticks {
    /// A fixed number of decimals, enough to tell a linear axis's ticks apart.
    Fixed(usize),
    /// Four significant digits, trailing zeros dropped (a log axis: 0.3, not 0.30000000000000004).
    Significant,
}

impl Ticks {
    fn label(self, v: f64) -> String {
        let trim = |s: String| {
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s
            }
        };
        match self {
            Ticks::Fixed(decimals) => format!("{v:.decimals$}"),
            Ticks::Significant if v == 0.0 => "0".to_string(),
            Ticks::Significant if (1e-3..1e5).contains(&v.abs()) => {
                let decimals = (3 - v.abs().log10().floor() as i32).max(0) as usize;
                trim(format!("{v:.decimals$}"))
            }
            Ticks::Significant => {
                let s = format!("{v:.3e}");
                let (mantissa, exponent) = s.split_once('e').expect("scientific notation");
                format!("{}e{exponent}", trim(mantissa.to_string()))
            }
        }
    }
}

/// Largest value drawn: plotters never returned from an axis whose span (y1 - y0, computed
/// inside it) overflows, as it does for values of both signs near f64::MAX.
const MAX_ABS: f64 = 1e300;

/// Most decades a log axis spans; values further below its top fall off the chart.
const MAX_DECADES: f64 = 30.0;

impl LineChart {
    /// Whether a point is drawn: finite, at most [`MAX_ABS`] in size, and above zero on a log
    /// scale.
    fn shown(&self, (x, y): (f64, f64)) -> bool {
        x.is_finite() && y.abs() <= MAX_ABS && (!self.log_y || y > 0.0)
    }

    /// Axes, lines and legend on a built chart (either y scale).
    fn finish<'a, DB: DrawingBackend + 'a, Y>(
        &self,
        chart: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
        x_ticks: Ticks,
        y_ticks: Ticks,
    ) -> Result<(), String>
    where
        Y: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
    {
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_label_formatter(&|v| x_ticks.label(*v))
            .y_label_formatter(&|v| y_ticks.label(*v))
            .y_labels(12)
            .label_style((FONT_NAME, 16))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, line) in self.lines.iter().enumerate() {
            let color = COLOURS[i % COLOURS.len()].to_rgba();
            let points: Vec<(f64, f64)> = line
                .points
                .iter()
                .copied()
                .filter(|p| self.shown(*p))
                .collect();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(&line.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            // Error bars; on a log scale the lower end stays above zero.
            let bars = line
                .points
                .iter()
                .zip(&line.errors)
                .filter_map(|((x, y), e)| {
                    let low = if self.log_y {
                        (y - e).max(y / 100.0)
                    } else {
                        y - e
                    };
                    (self.shown((*x, *y)) && e.is_finite()).then(|| {
                        ErrorBar::new_vertical(*x, low, *y, y + e, color.stroke_width(1), 8)
                    })
                });
            chart.draw_series(bars).map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .label_font((FONT_NAME, 16))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::{Figure, Line, LineChart, PlotError, Ticks};
    use plotters::prelude::*;

    fn chart(log_y: bool, ys: &[f64]) -> LineChart {
        LineChart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            log_y,
            lines: vec![Line {
                label: "a".into(),
                points: ys.iter().enumerate().map(|(i, y)| (i as f64, *y)).collect(),
                errors: ys.iter().map(|y| y.abs() / 10.0).collect(),
            }],
        }
    }

    #[test]
    fn charts_of_extreme_values_draw_or_refuse_in_bounded_time() {
        super::register_font();
        // plotters never returned from log axes reaching 0 or infinity, nor from hundreds of
        // decades: each chart on a thread, a hang a failure.
        let cases: [(bool, &[f64]); 11] = [
            (true, &[5e-324, 1.0]),
            (true, &[5e-324]),
            (true, &[1e305]),
            (true, &[1e308]),
            (true, &[1.0, 1e308]),
            (true, &[1e-30, 1e300]),
            (false, &[-1e308, 1e308]),
            (true, &[0.01, f64::INFINITY, f64::NAN, -1.0, 0.02]),
            (false, &[0.01, f64::INFINITY, f64::NAN, -1.0]),
            (true, &[-0.1, 0.0]),
            (false, &[f64::NAN]),
        ];
        for (log_y, ys) in cases {
            let c = chart(log_y, ys);
            let (send, receive) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let drawn = c.size().and_then(|size| {
                    let mut rgb = vec![0u8; (size.0 * size.1 * 3) as usize];
                    c.draw(BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area())
                });
                send.send(drawn.map_err(|e| e.to_string())).unwrap();
            });
            let drawn = receive
                .recv_timeout(std::time::Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("{ys:?} (log {log_y}): still drawing after 60 s"));
            let drawable = |y: f64| y.abs() <= 1e300 && (!log_y || y > 0.0);
            let nothing = !ys.iter().any(|y| drawable(*y));
            match drawn {
                Ok(()) => assert!(!nothing, "{ys:?} drew"),
                Err(e) => assert!(nothing && e.contains("nothing to plot"), "{ys:?}: {e}"),
            }
        }
        let e = chart(true, &[-0.1]).size().unwrap_err();
        assert!(matches!(e, PlotError::Input(_)), "{e}");
    }

    #[test]
    fn log_axis_ticks_are_short_and_linear_ones_keep_their_decimals() {
        let s = |v: f64| Ticks::Significant.label(v);
        assert_eq!(s(0.30000000000000004), "0.3");
        assert_eq!(s(0.6000000000000001), "0.6");
        assert_eq!(s(1.0), "1");
        assert_eq!(s(20.0), "20");
        assert_eq!(s(0.001), "0.001");
        assert_eq!(s(1e-4), "1e-4");
        assert_eq!(s(3.0000000000000004e-5), "3e-5");
        assert_eq!(s(1.5e6), "1.5e6");
        assert_eq!(s(0.0), "0");
        assert_eq!(Ticks::Fixed(2).label(-590.4), "-590.40");
        assert_eq!(Ticks::Fixed(0).label(1200.0), "1200");
    }
}
