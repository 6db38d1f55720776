//! What is trained: the PDD objective of eq. (5), optionally symmetrised (Appendix D) and/or
//! regularised by W KL(q(x) || q(-x)) (Appendix E).

/// What is trained.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Objective {
    /// Train q_sym(x) = [q(x) + q(-x)] / 2.
    pub symmetric: bool,
    /// Weight W of the KL(q(x) || q(-x)) regulariser.
    pub sym_reg: f64,
}

impl Objective {
    pub const PLAIN: Objective = Objective {
        symmetric: false,
        sym_reg: 0.0,
    };

    /// Whether the objective needs ln q(-x), i.e. an inference pass on -x.
    pub fn needs_negated_pass(&self) -> bool {
        self.symmetric || self.sym_reg != 0.0
    }
}
