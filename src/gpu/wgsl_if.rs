//! Conditional lines in WGSL (`#if NAME` ... `#else` ... `#endif`), which WGSL lacks: the shader
//! registry (`shaders.rs`) resolves them by a stage's sizes. Self-contained, so that
//! bench/mlp_shapes can include this file and build its `rows4` shape from the flow kernels'
//! own MLP library rather than a copy of it.

/// Keeps the lines of `source` whose `#if NAME` / `#else` / `#endif` conditions hold (nesting
/// allowed); `value` gives a size's truth, and a name it does not know is a bug in the registry.
pub fn select_lines(source: &str, value: &dyn Fn(&str) -> Option<bool>) -> String {
    let mut keep: Vec<bool> = Vec::new();
    let mut out = String::with_capacity(source.len());
    for line in source.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("#if ") {
            let v = value(name.trim())
                .unwrap_or_else(|| panic!("`#if {name}` names no size of the stage"));
            keep.push(v);
        } else if t == "#else" {
            let top = keep.last_mut().expect("`#else` without `#if`");
            *top = !*top;
        } else if t == "#endif" {
            keep.pop().expect("`#endif` without `#if`");
        } else if keep.iter().all(|k| *k) {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(keep.is_empty(), "`#if` without `#endif`");
    out
}

#[cfg(test)]
mod tests {
    use super::select_lines;

    #[test]
    fn conditional_lines_follow_the_sizes() {
        let src = "a\n#if X\nb\n#if Y\nc\n#else\nd\n#endif\n#else\ne\n#endif\nf\n";
        let run = |x: bool, y: bool| {
            select_lines(src, &|n| match n {
                "X" => Some(x),
                "Y" => Some(y),
                _ => None,
            })
        };
        assert_eq!(run(true, true), "a\nb\nc\nf\n");
        assert_eq!(run(true, false), "a\nb\nd\nf\n");
        assert_eq!(run(false, true), "a\ne\nf\n");
    }
}
