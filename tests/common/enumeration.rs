//! Exact expectation values of the small Ising model by enumerating every spin state.

/// <m^2>, <e> (energy per site) and <|m|> of the L x L periodic Ising model at `beta`, by
/// enumerating its 2^(L^2) states (L <= 4), in the order of `sample::observables::NAMES`.
pub fn ising_observables(l: usize, beta: f64) -> [f64; 3] {
    assert!(l <= 4, "enumeration needs L <= 4");
    let n = l * l;
    let (mut z, mut m2, mut e, mut am) = (0.0, 0.0, 0.0, 0.0);
    // Relative to the ground state's weight, so nothing overflows.
    let ground = 2.0 * n as f64;
    for state in 0u32..(1 << n) {
        let spin = |i: usize| if state >> i & 1 == 1 { 1.0 } else { -1.0 };
        let mut bonds = 0.0;
        let mut m = 0.0;
        for i in 0..n {
            let (row, col) = (i / l, i % l);
            bonds += spin(i) * (spin(row * l + (col + 1) % l) + spin(((row + 1) % l) * l + col));
            m += spin(i);
        }
        let w = (beta * (bonds - ground)).exp();
        let m = m / n as f64;
        z += w;
        m2 += w * m * m;
        am += w * m.abs();
        e += w * -bonds / n as f64;
    }
    [m2 / z, e / z, am / z]
}
