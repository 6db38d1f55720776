//! The shader registry: every `shaders/*.wgsl` file, embedded at build time.

/// One WGSL file per stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shader {
    Rng,
    TargetTransform,
    TargetLogProb,
}

impl Shader {
    pub const ALL: &'static [Shader] =
        &[Shader::Rng, Shader::TargetTransform, Shader::TargetLogProb];

    /// The file stem under `shaders/`.
    pub fn name(self) -> &'static str {
        match self {
            Shader::Rng => "rng",
            Shader::TargetTransform => "target_transform",
            Shader::TargetLogProb => "target_log_prob",
        }
    }

    pub fn source(self) -> &'static str {
        match self {
            Shader::Rng => include_str!("../../shaders/rng.wgsl"),
            Shader::TargetTransform => include_str!("../../shaders/target_transform.wgsl"),
            Shader::TargetLogProb => include_str!("../../shaders/target_log_prob.wgsl"),
        }
    }
}
