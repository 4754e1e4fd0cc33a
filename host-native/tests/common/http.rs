//! A scripted loopback HTTP server for the agent's tests, on std sockets: each connection gets
//! the next scripted reply, and every request is recorded with its exact body.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ttn_telemetry_core::sha256_hex;

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answers with a status, extra headers and a body.
    Status(u16, Vec<(&'static str, String)>, Vec<u8>),
    /// Answers with a status and this project's receipt of the received body.
    Receipt(u16),
    /// Reads the request and never answers (holds the socket for the duration).
    Hang(Duration),
}

impl Reply {
    pub fn status(code: u16) -> Self {
        Reply::Status(code, Vec::new(), Vec::new())
    }
    pub fn with_header(code: u16, name: &'static str, value: impl Into<String>) -> Self {
        Reply::Status(code, vec![(name, value.into())], Vec::new())
    }
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The server.
#[derive(Debug, Clone)]
pub struct Sink {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub connections: Arc<AtomicUsize>,
    pub accepts: Accepts,
}

/// Proves "no (more) connections" by an event instead of a sleep: a marker connection made
/// after the client has finished (exited, logged its decision) is accepted after every earlier
/// connection, since the kernel queues completed connections in order. Once the accept loop has
/// seen the marker, the count is final.
#[derive(Debug, Clone, Default)]
pub struct Accepts {
    inner: Arc<Mutex<AcceptsInner>>,
}

#[derive(Debug, Default)]
struct AcceptsInner {
    markers: Vec<SocketAddr>,
    seen: Vec<SocketAddr>,
}

impl Accepts {
    /// Called by the accept loop for each connection; `true` if it is a marker (to be dropped
    /// and not counted). Blocks while a marker is being registered.
    pub fn is_marker(&self, stream: &TcpStream) -> bool {
        let Ok(peer) = stream.peer_addr() else {
            return false;
        };
        let mut g = self.inner.lock().unwrap();
        if g.markers.contains(&peer) {
            g.seen.push(peer);
            true
        } else {
            false
        }
    }
    /// Connects a marker to `addr` and waits until the accept loop has seen it.
    pub fn settle(&self, addr: SocketAddr) {
        let marker = {
            // Holding the lock: the accept loop cannot look at the marker before it is known.
            let mut g = self.inner.lock().unwrap();
            let marker = TcpStream::connect(addr).expect("marker connection");
            g.markers.push(marker.local_addr().unwrap());
            marker
        };
        let me = marker.local_addr().unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        while !self.inner.lock().unwrap().seen.contains(&me) {
            assert!(
                Instant::now() < end,
                "the marker connection was not accepted"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Sink {
    /// Starts a server answering with `script` in order, then `rest` for ever.
    pub fn start(script: Vec<Reply>, rest: Reply) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (r, c) = (received.clone(), connections.clone());
        let accepts = Accepts::default();
        let a = accepts.clone();
        let script = Arc::new(Mutex::new(script.into_iter()));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if a.is_marker(&stream) {
                    continue;
                }
                c.fetch_add(1, Ordering::SeqCst);
                let reply = script
                    .lock()
                    .unwrap()
                    .next()
                    .unwrap_or_else(|| rest.clone());
                let r = r.clone();
                std::thread::spawn(move || handle(stream, reply, r));
            }
        });
        Sink {
            addr,
            accepts,
            received,
            connections,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/collect", self.addr)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The number of connections made before now, once the sink has accepted all of them:
    /// call it after the client is done (see [`Accepts`]).
    pub fn settled_connection_count(&self) -> usize {
        self.accepts.settle(self.addr);
        self.connection_count()
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Waits until `n` requests arrived (or `timeout` passed); returns them.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let end = Instant::now() + timeout;
        loop {
            let got = self.requests();
            if got.len() >= n || Instant::now() > end {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn handle(stream: TcpStream, reply: Reply, received: Arc<Mutex<Vec<Received>>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    received.lock().unwrap().push(Received {
        method,
        path,
        headers,
        body: body.clone(),
        at: Instant::now(),
    });
    let (code, extra, payload) = match reply {
        Reply::Hang(d) => {
            std::thread::sleep(d);
            return;
        }
        Reply::Status(code, extra, payload) => (code, extra, payload),
        Reply::Receipt(code) => (
            code,
            vec![("Content-Type", "application/json".to_owned())],
            format!(r#"{{"stored":true,"sha256":"{}"}}"#, sha256_hex(&body)).into_bytes(),
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        payload.len()
    );
    for (n, v) in extra {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut s = stream;
    let _ = s.write_all(out.as_bytes());
    let _ = s.write_all(&payload);
    let _ = s.flush();
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Fixed inputs for tests: the SPEC §2 example counts.
pub fn inputs() -> ttn_telemetry_core::Inputs {
    ttn_telemetry_core::Inputs::from_json(
        br#"{"uid_elements":["foo","bar"],
  "os":{"operating_system":"linux","arch":"amd64","binary_version":"0.1.0","golang_version":"rustc 1.95.0"},
  "entities_count":{"gateways":{"total":2,"gateways_by_frequency_plan_id":{"US_902_928_FSB_1":1,"US_902_928_FSB_2":1}},
    "end_devices":{"total":5,"activate_end_devices":{"total":4,"last_day":1,"last_week":2,"last_month":3}},
    "applications":{"total":1},"accounts":{"users":{"standard":3,"admin":1},"organizations":{"total":0}}}}"#,
    )
    .expect("test inputs")
}

/// The report bytes of [`inputs`].
pub fn body() -> Vec<u8> {
    inputs().build().unwrap().to_bytes()
}
