//! What can be wrong with a Dockerfile's text, for the lexer and the rewrites.

/// Why a Dockerfile could not be read or rewritten, naming its line. Docker rejects each of
/// these too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    /// `# escape=` with something other than `\` or `` ` ``.
    #[error("Dockerfile line {line}: invalid escape directive {value:?}: it must be ` or \\")]
    InvalidEscape {
        /// The 1-based line.
        line: usize,
        /// What was given.
        value: String,
    },
    /// A parser directive given twice.
    #[error("Dockerfile line {line}: only one {name:?} parser directive can be used")]
    DuplicateDirective {
        /// The 1-based line of the second one.
        line: usize,
        /// The directive, lower-cased.
        name: String,
    },
    /// A heredoc whose terminator never comes.
    #[error("Dockerfile line {line}: heredoc <<{name} is not terminated by a line \"{name}\"")]
    UnterminatedHeredoc {
        /// The 1-based line of the instruction.
        line: usize,
        /// The heredoc delimiter.
        name: String,
    },
    /// `SHELL` without a non-empty JSON array of strings.
    #[error("Dockerfile line {line}: SHELL requires a JSON array of strings, got {given:?}")]
    InvalidShell {
        /// The 1-based line.
        line: usize,
        /// The arguments given.
        given: String,
    },
    /// `RUN []`.
    #[error("Dockerfile line {line}: RUN with an empty exec-form array has nothing to run")]
    EmptyExec {
        /// The 1-based line.
        line: usize,
    },
}
