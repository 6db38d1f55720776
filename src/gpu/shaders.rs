//! The shader registry: every `shaders/*.wgsl` stage, embedded at build time, with the shared
//! WGSL libraries (`shaders/lib/*.wgsl`) it uses prepended (WGSL has no includes). One line per
//! stage declares its variant, file stem, libraries, and the sizes it is specialised for: a
//! stage with `{H = 8, M = 2}` is compiled per pipeline with `const H: u32 = ...;` in front, so
//! its loops have fixed trip counts and its private arrays their exact size (WGSL `override`
//! constants cannot size arrays); the listed values are the ones `validate_shader` checks.

macro_rules! registry {
    ($($variant:ident => $file:literal $([$($lib:literal),*])? $({$($c:ident = $v:literal),*})?),* $(,)?) => {
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

            /// The sizes the stage is specialised for, with the values it is validated with.
            pub fn sizes(self) -> &'static [(&'static str, u32)] {
                match self {
                    $(Shader::$variant => &[$($((stringify!($c), $v)),*)?]),*
                }
            }

            /// The stage's source with its libraries in front, at its validation sizes.
            pub fn source(self) -> String {
                self.source_with(self.sizes())
            }

            /// The stage's source specialised for `sizes` (each of [`Shader::sizes`], in any
            /// order; a size not given keeps its validation value).
            pub fn source_with(self, sizes: &[(&str, u32)]) -> String {
                let preamble: String = self
                    .sizes()
                    .iter()
                    .map(|(name, default)| {
                        let v = sizes.iter().find(|(n, _)| n == name).map_or(*default, |s| s.1);
                        format!("const {name}: u32 = {v}u;\n")
                    })
                    .collect();
                let body = match self {
                    $(Shader::$variant => [
                        $($(include_str!(concat!("../../shaders/lib/", $lib, ".wgsl")),)*)?
                        include_str!(concat!("../../shaders/", $file, ".wgsl")),
                    ].join("\n")),*
                };
                preamble + &body
            }
        }
    };
}

registry! {
    Rng => "rng",
    TargetTransform => "target_transform",
    TargetLogProb => "target_log_prob",
    FlowCoupling => "flow_coupling" ["layer", "mlp_layout", "mlp"] {H = 8, M = 2},
    FlowLogQ => "flow_log_q",
    FlowBackward => "flow_backward" ["layer", "mlp_layout", "mlp"] {H = 8, M = 2},
    GradReduce => "grad_reduce" ["mlp_layout"],
    Loss => "loss",
    Adam => "adam",
}
