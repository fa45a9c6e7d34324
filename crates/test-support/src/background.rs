//! Waiting for something, and commands run in the background.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Polls `ready` every 100 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A command run in the background, its stdout and stderr collected as they come (by
/// threads), so a test can act on its progress (stop a daemon mid-build) and then wait.
#[derive(Debug)]
pub struct Background {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Starts `command`, its stdin closed, stdout and stderr collected.
    pub fn spawn(mut command: Command) -> Background {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let readers = vec![
            collect(child.stdout.take().unwrap(), Arc::clone(&stdout)),
            collect(child.stderr.take().unwrap(), Arc::clone(&stderr)),
        ];
        Background {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// Its standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits at most `limit` for it to end (killing it then, and failing the test): its exit
    /// code, stdout and stderr.
    pub fn finish(mut self, limit: Duration) -> (Option<i32>, String, String) {
        let ended = wait_until(limit, || self.child.try_wait().unwrap().is_some());
        if !ended {
            let _ = self.child.kill();
        }
        let status = self.child.wait().unwrap();
        for reader in self.readers {
            let _ = reader.join();
        }
        let (stdout, stderr) = (
            self.stdout.lock().unwrap().clone(),
            self.stderr.lock().unwrap().clone(),
        );
        assert!(ended, "still running after {limit:?}\n{stdout}\n{stderr}");
        (status.code(), stdout, stderr)
    }
}

fn collect(
    mut pipe: impl Read + Send + 'static,
    sink: Arc<Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
}
