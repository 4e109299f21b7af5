//! A UDP server for the port tests (busybox has none): answers every datagram on port ARG1 with ARG2.
//! Built static by the test and copied into an image of the local registry.
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let s = std::net::UdpSocket::bind(("0.0.0.0", a[1].parse::<u16>().unwrap())).unwrap();
    let mut buf = [0u8; 1500];
    loop {
        if let Ok((_, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(a[2].as_bytes(), from);
        }
    }
}
