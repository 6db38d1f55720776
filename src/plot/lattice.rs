//! Lattice pictures: a row or grid of square panels, one value per cell, on a diverging colour
//! scale (blue negative, white zero, red positive), in grey from -1 (black) to 1 (white), or on a
//! sequential scale with a colour bar (matrices of non-negative values). NaN cells stay blank.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Figure, PlotError, FONT_NAME};

/// How values map to colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Palette {
    /// Blue - white - red, symmetric about 0, scaled to each panel's largest |value|.
    Diverging,
    /// -1 black to +1 white (spins and tanh x).
    Grey,
    /// 0 white to the figure's largest value dark blue, with a colour bar (mutual information).
    Sequential,
}

/// One square lattice.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub title: String,
    /// Side length; `values` holds side^2 values, row-major.
    pub side: usize,
    pub values: Vec<f64>,
}

impl Panel {
    /// A generated configuration x (L x L) as spins sign(x) or, with `tanh`, as tanh x.
    pub fn sample(title: String, x: &[f32], lattice: usize, tanh: bool) -> Self {
        Self {
            title,
            side: lattice,
            values: x
                .iter()
                .map(|v| {
                    let v = *v as f64;
                    if tanh {
                        v.tanh()
                    } else {
                        v.signum()
                    }
                })
                .collect(),
        }
    }
}

/// Panels in a grid of `columns` columns.
#[derive(Debug, Clone)]
pub struct LatticeFigure {
    pub title: String,
    pub columns: usize,
    pub palette: Palette,
    pub panels: Vec<Panel>,
}

const PANEL_PX: u32 = 220;

impl Figure for LatticeFigure {
    fn title(&self) -> &str {
        &self.title
    }

    fn size(&self) -> Result<(u32, u32), PlotError> {
        if self.panels.is_empty() || self.columns == 0 {
            return Err(PlotError::Input(format!("{}: no panels", self.title)));
        }
        let rows = self.panels.len().div_ceil(self.columns) as u32;
        // Matrices get room for their colour bars and their cells' detail.
        let px = match self.palette {
            Palette::Sequential => 2 * PANEL_PX,
            _ => PANEL_PX,
        };
        Ok((px * self.columns as u32, px * rows + 40))
    }

    /// `panel,row,col,value`.
    fn csv(&self) -> String {
        let mut csv = String::from("panel,row,col,value\n");
        for (k, p) in self.panels.iter().enumerate() {
            for (i, v) in p.values.iter().enumerate() {
                csv.push_str(&format!("{k},{},{},{v}\n", i / p.side, i % p.side));
            }
        }
        csv
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        self.draw_all(root)
    }
}

impl LatticeFigure {
    fn fail(&self, e: &dyn std::fmt::Display) -> PlotError {
        PlotError::Draw {
            what: self.title.clone(),
            message: e.to_string(),
        }
    }

    fn draw_all<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        root.fill(&WHITE).map_err(|e| self.fail(&e))?;
        let root = root
            .titled(&self.title, (FONT_NAME, 22))
            .map_err(|e| self.fail(&e))?;
        let rows = self.panels.len().div_ceil(self.columns);
        let areas = root.split_evenly((rows, self.columns));
        let top = self.largest();
        for (panel, area) in self.panels.iter().zip(areas) {
            if self.palette == Palette::Sequential {
                let w = area.dim_in_pixel().0 as i32;
                let (cells, bar) = area.split_horizontally(w * 4 / 5);
                self.draw_panel(panel, &cells, top)
                    .map_err(|e| self.fail(&e))?;
                colour_bar(&bar, top).map_err(|e| self.fail(&e))?;
            } else {
                self.draw_panel(panel, &area, top)
                    .map_err(|e| self.fail(&e))?;
            }
        }
        root.present().map_err(|e| self.fail(&e))
    }

    /// The largest finite value of all panels (the sequential scale's top).
    fn largest(&self) -> f64 {
        self.panels
            .iter()
            .flat_map(|p| &p.values)
            .filter(|v| v.is_finite())
            .fold(0.0f64, |m, v| m.max(*v))
            .max(1e-12)
    }

    fn draw_panel<DB: DrawingBackend>(
        &self,
        panel: &Panel,
        area: &DrawingArea<DB, Shift>,
        top: f64,
    ) -> Result<(), String> {
        let n = panel.side as i32;
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, (FONT_NAME, 16))
            .margin(8)
            .build_cartesian_2d(0..n, 0..n)
            .map_err(|e| e.to_string())?;
        let scale = match self.palette {
            Palette::Sequential => top,
            _ => panel
                .values
                .iter()
                .filter(|v| v.is_finite())
                .fold(0.0f64, |m, v| m.max(v.abs()))
                .max(1e-12),
        };
        let palette = self.palette;
        chart
            .draw_series(
                panel
                    .values
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(i, v)| {
                        let (r, c) = ((i / panel.side) as i32, (i % panel.side) as i32);
                        let color = colour(palette, *v, scale);
                        // Row 0 at the top, as in the arrays.
                        Rectangle::new([(c, n - r - 1), (c + 1, n - r)], color.filled())
                    }),
            )
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// A vertical bar from 0 (bottom) to `top`, labelled at five levels.
fn colour_bar<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, top: f64) -> Result<(), String> {
    const STEPS: i32 = 64;
    let (w, h) = area.dim_in_pixel();
    let (x0, x1) = (8, (w as i32 / 3).max(12));
    let (y0, y1) = (36, h as i32 - 12);
    let span = (y1 - y0).max(1);
    for k in 0..STEPS {
        let (a, b) = (y1 - span * k / STEPS, y1 - span * (k + 1) / STEPS);
        let c = colour(
            Palette::Sequential,
            (k as f64 + 0.5) / STEPS as f64 * top,
            top,
        );
        area.draw(&Rectangle::new([(x0, b), (x1, a)], c.filled()))
            .map_err(|e| e.to_string())?;
    }
    for k in 0..=4 {
        let y = y1 - span * k / 4;
        area.draw(&Text::new(
            format!("{:.2}", top * k as f64 / 4.0),
            (x1 + 4, y - 6),
            (FONT_NAME, 12),
        ))
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn colour(palette: Palette, v: f64, scale: f64) -> RGBColor {
    match palette {
        Palette::Sequential => {
            let t = (v / scale).clamp(0.0, 1.0);
            let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
            RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
        }
        Palette::Grey => {
            let g = (127.5 * (v.clamp(-1.0, 1.0) + 1.0)).round() as u8;
            RGBColor(g, g, g)
        }
        Palette::Diverging => {
            let t = (v / scale).clamp(-1.0, 1.0);
            let fade = |a: f64| (255.0 * (1.0 - a)).round() as u8;
            if t >= 0.0 {
                RGBColor(255, fade(t), fade(t))
            } else {
                RGBColor(fade(-t), fade(-t), 255)
            }
        }
    }
}
