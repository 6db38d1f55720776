//! Fig. 3b: latent against physical HMC, the chain-averaged structure factor per trajectory of
//! each beside the Wolff reference, and the same numbers as the `hmc --compare --series` CSV.

use super::{Line, LineChart};

/// One sampler's chain-averaged structure factor per measured trajectory.
pub struct Trace<'a> {
    pub label: &'a str,
    pub values: &'a [f64],
}

/// The traces against the trajectory (counted from the start, the first `thermalise` not
/// measured), with the reference value `reference` (label, <m^2>) as a flat line.
pub fn structure_factor_figure(
    lattice: usize,
    chains: usize,
    thermalise: usize,
    traces: &[Trace],
    reference: (&str, f64),
) -> LineChart {
    let measured = traces.iter().map(|t| t.values.len()).max().unwrap_or(0);
    let ends = [thermalise as f64, (thermalise + measured) as f64];
    let mut lines: Vec<Line> = traces
        .iter()
        .map(|t| Line {
            label: t.label.into(),
            points: t
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| ((thermalise + i) as f64, *v))
                .collect(),
            errors: Vec::new(),
        })
        .collect();
    lines.push(Line {
        label: reference.0.into(),
        points: ends.iter().map(|t| (*t, reference.1)).collect(),
        errors: Vec::new(),
    });
    LineChart {
        title: format!("Structure factor, L = {lattice}, {chains} chains"),
        x_label: "HMC trajectory".into(),
        y_label: "<m^2> (chain average)".into(),
        log_y: false,
        lines,
    }
}

/// `t,latent_structure_factor,physical_structure_factor`: the two traces side by side, one row
/// per measured trajectory.
pub fn comparison_csv(latent: &[f64], physical: &[f64]) -> String {
    let mut csv = String::from("t,latent_structure_factor,physical_structure_factor\n");
    for (t, (a, b)) in latent.iter().zip(physical).enumerate() {
        csv.push_str(&format!("{t},{a},{b}\n"));
    }
    csv
}
