//! Helpers shared by the resolve integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::io;

use resolve::{ContextFiles, Error, Params, Resolved, resolve};

/// An in-memory context in tar order that records every file it is asked to read.
#[derive(Debug, Default)]
pub struct Ctx {
    pub files: Vec<(String, Vec<u8>)>,
    pub reads: RefCell<Vec<String>>,
}

impl Ctx {
    pub fn new(files: &[(&str, &str)]) -> Self {
        Ctx {
            files: files
                .iter()
                .map(|(p, c)| ((*p).to_owned(), c.as_bytes().to_vec()))
                .collect(),
            reads: RefCell::new(Vec::new()),
        }
    }

    pub fn push_bytes(&mut self, path: &str, bytes: &[u8]) {
        self.files.push((path.to_owned(), bytes.to_vec()));
    }

    pub fn reads(&self) -> Vec<String> {
        self.reads.borrow().clone()
    }
}

impl ContextFiles for Ctx {
    fn paths(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        self.files.paths()
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        self.reads.borrow_mut().push(path.to_owned());
        self.files.read(path)
    }
}

/// Resolve `files` with `params`.
pub fn run(files: &[(&str, &str)], params: &Params) -> Result<Resolved, Error> {
    resolve(&Ctx::new(files), params)
}

/// Resolve and unwrap, with the error text in the panic message.
pub fn ok(files: &[(&str, &str)], params: &Params) -> Resolved {
    match run(files, params) {
        Ok(r) => r,
        Err(e) => panic!("resolution failed: {e}"),
    }
}

/// Resolve, expecting an error; returns its message.
/// The error's text as the reference words it: without what `NotFound` adds about the
/// files looked for (tested on its own).
pub fn err(files: &[(&str, &str)], params: &Params) -> String {
    match run(files, params) {
        Ok(r) => panic!("expected an error, resolved {r:?}"),
        Err(e) => {
            let text = e.to_string();
            match text.split_once(" (looked for ") {
                Some((reference, _)) => reference.to_owned(),
                None => text,
            }
        }
    }
}
