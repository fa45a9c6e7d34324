//! The `dockerfile` stage of balena-compose: every reading and rewriting of a Dockerfile's
//! text, none of which needs a daemon.
//!
//! * [`process`]: render a `%%VARIABLE%%` template (balena's `Dockerfile.template`);
//! * [`base_images`], [`target_base_images`]: the images a Dockerfile builds `FROM`;
//! * [`transpose`]: start every `RUN` under an in-image qemu (the emulation rewrite), and
//!   [`pin_build_platform`] for the classic builder's `FROM --platform=$BUILDPLATFORM`;
//! * [`add_secret_mounts`]: a BuildKit secret mount ([`secret_mount_flag`]) on every `RUN`.
//!
//! All but [`process`] read the text through one lexer (`lexer.rs`), which follows
//! moby/BuildKit's parser: parser directives (`# escape=` changes the continuation
//! character), continuations with comment lines inside them, and heredocs (`RUN <<EOF`) whose
//! body lines belong to their instruction. It keeps each instruction's byte span, so a
//! rewrite changes only the instructions it must and copies every other byte.
//!
//! Why not the `parse-dockerfile` crate (0.1.9, tried): it refuses a `RUN` with two heredocs
//! (`RUN cat <<A > a && cat <<B > b`, which BuildKit runs); its shell-form arguments are the
//! raw text, continuations and comment lines included, so the joining would stay ours; and a
//! heredoc's span stops before its terminator, with no `<<-` flag, so an instruction's end
//! would have to be worked out again. The hand-written lexer is a few hundred lines.
//!
//! ## Templates
//!
//! The rules are those of balena's reference toolkit (`@balena/compose` `dockerfile.process`):
//!
//! * the template is split on `'\n'` only (a `'\r'` stays at the end of its line) and rejoined
//!   with `'\n'`;
//! * a line whose **first** character is `#` is copied verbatim (leading whitespace before the
//!   `#` makes it an ordinary line);
//! * on every other line, `%%NAME%%` is replaced by the variable's value, where `NAME` is an
//!   uppercase ASCII letter followed by one or more uppercase letters or underscores
//!   (`%%A%%`, `%%VAR1%%` and `%%lower%%` are left as they are);
//! * substitution is a single pass (a value holding `%%X%%` is not expanded again);
//! * a name the variables do not define is an error naming it and its 1-based line.
//!
//! ```
//! use std::collections::HashMap;
//!
//! let vars = HashMap::from([
//!     ("BALENA_ARCH".to_owned(), "aarch64".to_owned()),
//!     ("TAG".to_owned(), "latest".to_owned()),
//! ]);
//! let out = dockerfile::process("# %%KEPT%%\nFROM local/%%BALENA_ARCH%%-busybox:%%TAG%%\n", &vars)?;
//! assert_eq!(out, "# %%KEPT%%\nFROM local/aarch64-busybox:latest\n");
//!
//! let err = dockerfile::process("FROM x\nRUN echo %%MISSING%%", &vars).unwrap_err();
//! assert_eq!(err.to_string(), "MISSING is not defined (template line 2)");
//! # Ok::<(), dockerfile::Error>(())
//! ```
//!
//! ## Reading and rewriting
//!
//! ```
//! use dockerfile::{TransposeOptions, add_secret_mounts, base_images, transpose};
//!
//! // A heredoc's body is not an instruction, whatever it starts with.
//! let text = "FROM local/busybox AS base\nRUN <<EOF\nFROM not-an-image\nEOF\nFROM base\n";
//! assert_eq!(base_images(text), ["local/busybox"]);
//!
//! let mounted = add_secret_mounts("FROM a\nRUN cat /run/secrets/token\n", &["token"])?;
//! assert_eq!(
//!     mounted,
//!     "FROM a\nRUN --mount=type=secret,id=token,target=/run/secrets/token cat /run/secrets/token\n"
//! );
//!
//! let opts = TransposeOptions::new("qemu-aarch64-static");
//! let out = transpose("# escape=`\nFROM a\nRUN echo `\n  hi\n", &opts)?;
//! assert_eq!(
//!     out,
//!     "# escape=`\nFROM a\n\
//!      COPY [\".balena/qemu-aarch64-static\",\"/usr/bin/qemu-aarch64-static\"]\n\
//!      RUN [\"/usr/bin/qemu-aarch64-static\",\"/bin/sh\",\"-c\",\"echo   hi\"]\n"
//! );
//! # Ok::<(), dockerfile::SyntaxError>(())
//! ```
#![deny(missing_docs)]

mod from;
mod lexer;
mod secrets;
mod syntax;
mod template;
mod transpose;

pub use from::{base_images, target_base_images};
pub use lexer::parse_json_array;
pub use secrets::{add_secret_mounts, secret_mount_flag};
pub use syntax::SyntaxError;
pub use template::{Error, Variables, process};
pub use transpose::{TransposeOptions, json_array, pin_build_platform, transpose};
