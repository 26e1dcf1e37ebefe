//! `--http`: gtmd serves its web view, and a page stays open on it for the
//! whole measurement, doing what the page's script does in a browser: one
//! load of the overview, then server-sent events, and a fresh load of the
//! overview each time they say the state changed. So the latency and idle
//! numbers include the snapshots gtmd publishes and the pages it renders.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Whether gtmd is started with `--http 127.0.0.1:0` and a page open.
pub static HTTP: AtomicBool = AtomicBool::new(false);
/// Overview loads, over every page the bench kept open.
pub static LOADS: AtomicUsize = AtomicUsize::new(0);

/// An open page; it closes when dropped (or when gtmd goes).
pub struct Page {
    stop: Arc<AtomicBool>,
}

impl Drop for Page {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Page {
    /// Open the overview at `addr` (`127.0.0.1:PORT`) and follow it.
    pub fn open(addr: String) -> Page {
        let stop = Arc::new(AtomicBool::new(false));
        let done = stop.clone();
        std::thread::spawn(move || follow(&addr, &done));
        Page { stop }
    }
}

fn follow(addr: &str, stop: &AtomicBool) {
    load(addr);
    let Ok(mut s) = TcpStream::connect(addr) else {
        return;
    };
    let req = format!("GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return;
    }
    // Wake up now and then to see whether the bench is done with the page.
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let mut seen = None;
    let mut state = false;
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        }
        // The stream is chunked: chunk sizes come as lines of their own,
        // and an event's lines are `event: state` then `data: N`.
        let l = line.trim();
        if l == "event: state" {
            state = true;
        } else if let Some(v) = l.strip_prefix("data: ").filter(|_| state) {
            state = false;
            if seen.as_deref() != Some(v) {
                if seen.is_some() {
                    load(addr);
                }
                seen = Some(v.to_string());
            }
        }
    }
}

/// One load of the overview, read whole.
fn load(addr: &str) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return;
    };
    let req = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_ok() {
        let mut body = Vec::new();
        if s.read_to_end(&mut body).is_ok() {
            LOADS.fetch_add(1, Ordering::Relaxed);
        }
    }
}
