//! The shader registry: every `shaders/*.wgsl` stage, embedded at build time, with the shared
//! WGSL libraries (`shaders/lib/*.wgsl`) it uses prepended (WGSL has no includes). One line per
//! stage declares its variant, file stem, and libraries, so they cannot drift apart.

macro_rules! registry {
    ($($variant:ident => $file:literal $([$($lib:literal),*])?),* $(,)?) => {
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

            /// The stage's source with its libraries in front.
            pub fn source(self) -> String {
                match self {
                    $(Shader::$variant => [
                        $($(include_str!(concat!("../../shaders/lib/", $lib, ".wgsl")),)*)?
                        include_str!(concat!("../../shaders/", $file, ".wgsl")),
                    ].join("\n")),*
                }
            }
        }
    };
}

registry! {
    Rng => "rng",
    TargetTransform => "target_transform",
    TargetLogProb => "target_log_prob",
    FlowCoupling => "flow_coupling" ["layer", "mlp_layout", "mlp"],
    FlowLogQ => "flow_log_q",
    FlowBackward => "flow_backward" ["layer", "mlp_layout", "mlp"],
    GradReduce => "grad_reduce" ["mlp_layout"],
    Loss => "loss",
    Adam => "adam",
}
