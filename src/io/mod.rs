//! Files: atomic writes, run-directory locks, checkpoints, NumPy `.npz` output, and paths and
//! arguments written as shell words for commands the user copies.

pub mod atomic;
pub mod checkpoint;
pub mod lock;
pub mod npy;

pub use atomic::{check_creatable_dir, check_writable, write_atomic};

/// `s` as one shell word: as it is where it holds only plain path characters, else single-quoted.
pub fn shell_word(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shell_words_quote_only_what_the_shell_would_split_or_expand() {
        use super::shell_word;
        assert_eq!(shell_word("runs/L16-beta0.44"), "runs/L16-beta0.44");
        assert_eq!(shell_word("my runs"), "'my runs'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("$HOME"), "'$HOME'");
    }
}
