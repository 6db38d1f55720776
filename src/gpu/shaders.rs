//! The shader registry: every `shaders/*.wgsl` stage, embedded at build time, with the shared
//! WGSL libraries (`shaders/lib/*.wgsl`) it uses prepended (WGSL has no includes). One line per
//! stage declares its variant, file stem, libraries, and the sizes it is specialised for: a
//! stage with `{H = 8, M = 2}` is compiled per pipeline with `const H: u32 = ...;` in front, so
//! its loops have fixed trip counts and its private arrays their exact size (WGSL `override`
//! constants cannot size arrays); the listed values are the ones `validate_shader` checks. A size
//! also selects lines: `#if NAME` ... `#else` ... `#endif` keeps the first branch when NAME is
//! nonzero (WGSL cannot choose a binding's type by a constant; see lib/weights.wgsl).

use super::wgsl_if::select_lines;

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

            /// The stage's libraries and file as written, before specialisation.
            pub fn raw(self) -> String {
                match self {
                    $(Shader::$variant => [
                        $($(include_str!(concat!("../../shaders/lib/", $lib, ".wgsl")),)*)?
                        include_str!(concat!("../../shaders/", $file, ".wgsl")),
                    ].join("\n")),*
                }
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
                let body = self.raw();
                preamble + &select_lines(&body, &|name| {
                    sizes
                        .iter()
                        .find(|(n, _)| *n == name)
                        .or_else(|| self.sizes().iter().find(|(n, _)| *n == name))
                        .map(|s| s.1 != 0)
                })
            }
        }
    };
}

registry! {
    Rng => "rng" ["invocation"],
    TargetTransform => "target_transform" ["invocation"] {T = 16},
    TargetLogProb => "target_log_prob" ["invocation", "workgroup_sum", "float"],
    FlowPack => "flow_pack" ["invocation"],
    FlowCoupling => "flow_coupling" ["invocation", "layer", "mlp_layout", "weights", "mlp"] {H = 8, M = 2, HB = 1, UW = 1, UB = 4096, SS = 232},
    FlowLogQ => "flow_log_q" ["invocation", "workgroup_sum"],
    FlowBackward => "flow_backward" ["invocation", "layer", "mlp_layout", "weights", "mlp"] {H = 8, M = 2, HB = 1, UW = 1, UB = 4096, SS = 232, GA = 1},
    GradReduce => "grad_reduce" ["invocation", "mlp_layout"] {SL = 1},
    Loss => "loss" ["invocation", "workgroup_sum"],
    Adam => "adam" ["invocation", "workgroup_sum", "float"],
    Hmc => "hmc" ["invocation", "workgroup_sum", "float"],
    Observables => "observables" ["invocation", "workgroup_sum", "float"],
}

impl Shader {
    /// Stages compiled without naga's index clamps (`ShaderRuntimeChecks::bounds_checks`).
    /// naga writes every index into a private array that it cannot prove in bounds as
    /// `min(i, N - 1)`; in these stages that kept lavapipe from resolving the indices of the
    /// MLP activations and gradient accumulators to constants, so the arrays went to scratch
    /// memory and every access became a gather or scatter per invocation (seen in the JIT code;
    /// 2.4x on a training step, docs/BENCHMARKS.md). Both stages index private arrays only by
    /// constants or by loop variables bounded by the array's own size (`n_hidden() <= H`, 4,
    /// M), and their storage indices come from layer uniforms the host builds with the buffers
    /// (tested against the CPU twin; Vulkan keeps robustBufferAccess on besides).
    pub fn trusted_indices(self) -> bool {
        matches!(self, Shader::FlowCoupling | Shader::FlowBackward)
    }

    /// The value of `const NAME: u32 = ...u;` as the stage's WGSL (libraries included) writes
    /// it: for the tests that hold a flag or slot shared with Rust to the Rust constant it
    /// mirrors.
    pub fn constant(self, name: &str) -> Option<u32> {
        let raw = self.raw();
        let prefix = format!("const {name}: u32 = ");
        let rest = raw.lines().find_map(|l| l.trim().strip_prefix(&prefix))?;
        let v = rest.split(['u', ';']).next()?;
        match v.strip_prefix("0x") {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Shader;

    #[test]
    fn constants_are_read_from_the_wgsl() {
        assert_eq!(Shader::GradReduce.constant("NONE"), Some(u32::MAX));
        assert_eq!(Shader::Loss.constant("SYMMETRIC"), Some(2));
        assert_eq!(Shader::Loss.constant("NO_SUCH_CONSTANT"), None);
    }
}
