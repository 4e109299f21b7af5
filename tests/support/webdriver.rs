//! Just enough of the W3C WebDriver protocol to drive Debian's headless Chromium through
//! chromedriver on loopback: open a page, run a script in it, click, take a screenshot. Plain
//! HTTP/1.1 over std's TcpStream, one request per connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

fn http(port: u16, method: &str, path: &str, body: Option<&serde_json::Value>) -> std::io::Result<serde_json::Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    // Read the head, then the body by its length (chromedriver keeps connections open).
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let body = loop {
        // A signal to the test process (a child exiting) interrupts the read: read again.
        let n = match s.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => r?,
        };
        if n == 0 {
            break None;
        }
        raw.extend_from_slice(&buf[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let length =
            head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
        let chunked = head.contains("transfer-encoding: chunked");
        let have = raw.len() - end - 4;
        match length {
            Some(len) if have >= len => break Some(String::from_utf8_lossy(&raw[end + 4..end + 4 + len]).to_string()),
            None if chunked && raw.ends_with(b"0\r\n\r\n") => {
                break Some(dechunk(&String::from_utf8_lossy(&raw[end + 4..])))
            }
            _ => continue,
        }
    };
    let body = match body {
        Some(b) => b,
        None => {
            let text = String::from_utf8_lossy(&raw).to_string();
            text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
        }
    };
    serde_json::from_str(&body).map_err(|e| std::io::Error::other(format!("{e}: {body}")))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n.min(rest.len())]);
        s = rest.get(n + 2..).unwrap_or("");
    }
    out
}

impl Browser {
    /// Starts chromedriver on `port` and a headless Chromium session (as root: no sandbox;
    /// without background networking, which this machine's closed network refuses).
    pub fn start(port: u16) -> Browser {
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (scripts/engine-up installs chromium-driver)");
        let t = Instant::now();
        while http(port, "GET", "/status", None).is_err() {
            assert!(t.elapsed() < Duration::from_secs(20), "chromedriver did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let mut driver = Some(driver);
        let r = http(port, "POST", "/session", Some(&caps));
        let session = match r.as_ref().ok().and_then(|v| v["value"]["sessionId"].as_str()) {
            Some(s) => s.to_string(),
            None => {
                let _ = driver.as_mut().unwrap().kill();
                panic!("no browser session: {r:?}");
            }
        };
        Browser { driver: driver.take().unwrap(), port, session, _profile: profile }
    }

    fn call(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
        let path = format!("/session/{}{path}", self.session);
        let v = http(self.port, method, &path, body.as_ref()).unwrap_or_else(|e| panic!("webdriver {path}: {e}"));
        if v["value"].get("error").is_some() {
            panic!("webdriver {path}: {}", v["value"]);
        }
        v["value"].clone()
    }

    pub fn open(&self, url: &str) {
        self.call("POST", "/url", Some(serde_json::json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page and returns its value.
    pub fn eval(&self, script: &str, args: serde_json::Value) -> serde_json::Value {
        self.call("POST", "/execute/sync", Some(serde_json::json!({ "script": script, "args": args })))
    }

    pub fn text(&self, css: &str) -> String {
        let v = self.eval(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
            serde_json::json!([css]),
        );
        v.as_str().unwrap_or_default().to_string()
    }

    pub fn click(&self, css: &str) {
        let el = self.call("POST", "/element", Some(serde_json::json!({ "using": "css selector", "value": css })));
        let id =
            el.as_object().and_then(|o| o.values().next()).and_then(|v| v.as_str()).expect("element id").to_string();
        self.call("POST", &format!("/element/{id}/click"), Some(serde_json::json!({})));
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let el = self.call("POST", "/element", Some(serde_json::json!({ "using": "css selector", "value": css })));
        let id =
            el.as_object().and_then(|o| o.values().next()).and_then(|v| v.as_str()).expect("element id").to_string();
        self.call("POST", &format!("/element/{id}/value"), Some(serde_json::json!({ "text": text })));
    }

    /// A PNG of the viewport, written to `path`.
    pub fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine as _;
        let b64 = self.call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap_or_default()).unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Waits until `f` holds, up to `limit`; the last value it saw otherwise.
    pub fn wait(&self, limit: Duration, mut f: impl FnMut(&Browser) -> bool) -> bool {
        let t = Instant::now();
        while t.elapsed() < limit {
            if f(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(self.port, "DELETE", &format!("/session/{}", self.session), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
