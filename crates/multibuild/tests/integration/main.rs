//! The integration tests of `multibuild`: [`multibuild::run`] on small generated projects
//! against the private daemon of `scripts/docker-env` (one test binary, one module per topic).

mod errors;
mod run;
