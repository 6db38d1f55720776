//! The shader registry: every `shaders/*.wgsl` file, embedded at build time. One line per stage
//! declares its variant, file stem, and source, so the three cannot drift apart.

macro_rules! registry {
    ($($variant:ident => $file:literal),* $(,)?) => {
        /// One WGSL file per stage.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Shader {
            $($variant),*
        }

        impl Shader {
            pub const ALL: &'static [Shader] = &[$(Shader::$variant),*];

            /// The file stem under `shaders/`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Shader::$variant => $file),*
                }
            }

            pub fn source(self) -> &'static str {
                match self {
                    $(Shader::$variant => include_str!(concat!("../../shaders/", $file, ".wgsl"))),*
                }
            }
        }
    };
}

registry! {
    Rng => "rng",
    TargetTransform => "target_transform",
    TargetLogProb => "target_log_prob",
    FlowCoupling => "flow_coupling",
    FlowLogQ => "flow_log_q",
}
