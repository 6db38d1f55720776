//! Lattice pictures: a row or grid of square panels, one value per site, on a diverging colour
//! scale (blue negative, white zero, red positive) or in grey from -1 (black) to 1 (white).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{outputs, register_font, PlotError, FONT_NAME};
use crate::io::write_atomic;

/// How values map to colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Palette {
    /// Blue - white - red, symmetric about 0, scaled to each panel's largest |value|.
    Diverging,
    /// -1 black to +1 white (spins and tanh x).
    Grey,
}

/// One square lattice.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub title: String,
    /// Side length; `values` holds side^2 values, row-major.
    pub side: usize,
    pub values: Vec<f64>,
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

impl LatticeFigure {
    /// Writes the PNG, the SVG and the CSV (`panel,row,col,value`).
    pub fn save(&self, stem: &Path) -> Result<(), PlotError> {
        register_font();
        if self.panels.is_empty() || self.columns == 0 {
            return Err(PlotError::Input(format!("{}: no panels", self.title)));
        }
        let rows = self.panels.len().div_ceil(self.columns) as u32;
        let size = (PANEL_PX * self.columns as u32, PANEL_PX * rows + 40);
        let mut rgb = vec![0u8; (size.0 * size.1 * 3) as usize];
        self.draw(BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area())?;
        let mut svg = String::new();
        self.draw(SVGBackend::with_string(&mut svg, size).into_drawing_area())?;
        let mut png = Vec::new();
        image::RgbImage::from_raw(size.0, size.1, rgb)
            .expect("the buffer has the image's size")
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| self.fail(&e))?;
        let mut csv = String::from("panel,row,col,value\n");
        for (k, p) in self.panels.iter().enumerate() {
            for (i, v) in p.values.iter().enumerate() {
                csv.push_str(&format!("{k},{},{},{v}\n", i / p.side, i % p.side));
            }
        }
        let [png_path, svg_path, csv_path] = outputs(stem);
        for (path, bytes) in [
            (png_path, png.as_slice()),
            (svg_path, svg.as_bytes()),
            (csv_path, csv.as_bytes()),
        ] {
            write_atomic(&path, bytes).map_err(|e| PlotError::Io {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    fn fail(&self, e: &dyn std::fmt::Display) -> PlotError {
        PlotError::Draw {
            what: self.title.clone(),
            message: e.to_string(),
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        root.fill(&WHITE).map_err(|e| self.fail(&e))?;
        let root = root
            .titled(&self.title, (FONT_NAME, 22))
            .map_err(|e| self.fail(&e))?;
        let rows = self.panels.len().div_ceil(self.columns);
        let areas = root.split_evenly((rows, self.columns));
        for (panel, area) in self.panels.iter().zip(areas) {
            self.draw_panel(panel, &area).map_err(|e| self.fail(&e))?;
        }
        root.present().map_err(|e| self.fail(&e))
    }

    fn draw_panel<DB: DrawingBackend>(
        &self,
        panel: &Panel,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), String> {
        let n = panel.side as i32;
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, (FONT_NAME, 16))
            .margin(8)
            .build_cartesian_2d(0..n, 0..n)
            .map_err(|e| e.to_string())?;
        let scale = panel
            .values
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs()))
            .max(1e-12);
        let palette = self.palette;
        chart
            .draw_series(panel.values.iter().enumerate().map(|(i, v)| {
                let (r, c) = ((i / panel.side) as i32, (i % panel.side) as i32);
                let color = colour(palette, *v, scale);
                // Row 0 at the top, as in the arrays.
                Rectangle::new([(c, n - r - 1), (c + 1, n - r)], color.filled())
            }))
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

fn colour(palette: Palette, v: f64, scale: f64) -> RGBColor {
    match palette {
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
