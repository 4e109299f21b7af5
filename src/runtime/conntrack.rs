//! The kernel's connection tracking, as far as hawser's port rules need it: the connections open
//! to a container (a replacement drains them), and forgetting the UDP flows to a container a
//! port no longer goes to. UDP has no connection to end: a client that keeps sending from one
//! address and port stays, by its tracked flow, with the container its first datagram reached,
//! and would keep reaching the old one (or nothing, once it stops) for minutes. Docker removes
//! such flows too when it changes a port's mapping.

use std::net::Ipv4Addr;

const TABLE: &str = "/proc/net/nf_conntrack";

/// One tracked flow, as `/proc/net/nf_conntrack` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub protocol: u8,
    pub established: bool,
    /// The original direction: the client and the address it sent to.
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    /// The reply direction's source: where the flow really goes (after DNAT).
    pub reply_src: Ipv4Addr,
    pub reply_sport: u16,
}

/// The IPv4 TCP and UDP flows tracked now (none where the table cannot be read).
pub fn flows() -> Vec<Flow> {
    std::fs::read_to_string(TABLE).map(|t| parse(&t)).unwrap_or_default()
}

fn parse(table: &str) -> Vec<Flow> {
    table
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            if words.first() != Some(&"ipv4") {
                return None;
            }
            let protocol: u8 = words.get(3)?.parse().ok()?;
            // Each key appears twice: the original direction first, then the reply's.
            let all = |key: &str| -> Vec<&str> { words.iter().filter_map(|w| w.strip_prefix(key)).collect() };
            let (src, dst, sport, dport) = (all("src="), all("dst="), all("sport="), all("dport="));
            Some(Flow {
                protocol,
                established: words.contains(&"ESTABLISHED"),
                src: src.first()?.parse().ok()?,
                dst: dst.first()?.parse().ok()?,
                sport: sport.first()?.parse().ok()?,
                dport: dport.first()?.parse().ok()?,
                reply_src: src.get(1)?.parse().ok()?,
                reply_sport: sport.get(1)?.parse().ok()?,
            })
        })
        .filter(|f| f.protocol == 6 || f.protocol == 17)
        .collect()
}

/// TCP connections established now to `to:port` (the reply side of the flow is the container).
pub fn open_to(flows: &[Flow], to: Ipv4Addr, port: u16) -> usize {
    flows.iter().filter(|f| f.protocol == 6 && f.established && f.reply_src == to && f.reply_sport == port).count()
}

/// Forgets the UDP flows that go to `to:port`: the next datagram of each is mapped anew, by the
/// rules as they are now. Returns how many were forgotten.
pub fn forget_udp(to: Ipv4Addr, port: u16) -> usize {
    let gone: Vec<Flow> =
        flows().into_iter().filter(|f| f.protocol == 17 && f.reply_src == to && f.reply_sport == port).collect();
    if gone.is_empty() {
        return 0;
    }
    let Ok(sock) = Netlink::open() else { return 0 };
    gone.iter().filter(|f| sock.delete(f)).count()
}

/// A ctnetlink socket (what the `conntrack` tool uses): one request per flow deleted.
struct Netlink(std::os::fd::OwnedFd);

impl Netlink {
    fn open() -> std::io::Result<Netlink> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket(2); the descriptor is owned from here on.
        let fd =
            unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_NETFILTER) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by socket(2) and is not owned elsewhere.
        let sock = Netlink(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
        let timeout = libc::timeval { tv_sec: 1, tv_usec: 0 };
        // SAFETY: a timeval of the right size for SO_RCVTIMEO.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        Ok(sock)
    }

    /// Deletes the flow with `f`'s original tuple; whether the kernel said it did.
    fn delete(&self, f: &Flow) -> bool {
        use std::os::fd::AsRawFd;
        let msg = delete_request(f);
        let fd = self.0.as_raw_fd();
        // SAFETY: sending a buffer we own, of its own length, to the kernel (the default address).
        let sent = unsafe { libc::send(fd, msg.as_ptr().cast(), msg.len(), 0) };
        if sent != msg.len() as isize {
            return false;
        }
        let mut buf = [0u8; 512];
        // SAFETY: receiving into a buffer we own, at most its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        // The acknowledgement is an NLMSG_ERROR whose error is 0.
        n >= 20
            && u16::from_ne_bytes([buf[4], buf[5]]) == libc::NLMSG_ERROR as u16
            && i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]) == 0
    }
}

/// An `IPCTNL_MSG_CT_DELETE` request for the flow with `f`'s original tuple.
fn delete_request(f: &Flow) -> Vec<u8> {
    const NFNL_SUBSYS_CTNETLINK: u16 = 1;
    const IPCTNL_MSG_CT_DELETE: u16 = 2;
    const CTA_TUPLE_ORIG: u16 = 1;
    const CTA_TUPLE_IP: u16 = 1;
    const CTA_TUPLE_PROTO: u16 = 2;
    const CTA_IP_V4_SRC: u16 = 1;
    const CTA_IP_V4_DST: u16 = 2;
    const CTA_PROTO_NUM: u16 = 1;
    const CTA_PROTO_SRC_PORT: u16 = 2;
    const CTA_PROTO_DST_PORT: u16 = 3;
    const NESTED: u16 = 0x8000;

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let len = 4 + payload.len();
        let mut a = Vec::with_capacity(len.next_multiple_of(4));
        a.extend_from_slice(&(len as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(payload);
        a.resize(len.next_multiple_of(4), 0);
        a
    }
    let ip = [attr(CTA_IP_V4_SRC, &f.src.octets()), attr(CTA_IP_V4_DST, &f.dst.octets())].concat();
    let proto = [
        attr(CTA_PROTO_NUM, &[f.protocol]),
        attr(CTA_PROTO_SRC_PORT, &f.sport.to_be_bytes()),
        attr(CTA_PROTO_DST_PORT, &f.dport.to_be_bytes()),
    ]
    .concat();
    let tuple = attr(
        CTA_TUPLE_ORIG | NESTED,
        &[attr(CTA_TUPLE_IP | NESTED, &ip), attr(CTA_TUPLE_PROTO | NESTED, &proto)].concat(),
    );
    // nfgenmsg: the family, version 0, resource id 0.
    let body = [&[libc::AF_INET as u8, 0, 0, 0][..], &tuple].concat();
    let len = 16 + body.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE).to_ne_bytes());
    msg.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
ipv4     2 tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=40000 dport=18080 src=172.17.0.5 dst=172.17.0.1 sport=8080 dport=40000 [ASSURED] mark=0 use=1
ipv4     2 tcp      6 119 TIME_WAIT src=127.0.0.1 dst=127.0.0.1 sport=40001 dport=18080 src=172.17.0.5 dst=172.17.0.1 sport=8080 dport=40001 [ASSURED] mark=0 use=1
ipv4     2 tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=40002 dport=18080 src=172.17.0.6 dst=172.17.0.1 sport=8080 dport=40002 [ASSURED] mark=0 use=1
ipv4     2 udp      17 29 src=127.0.0.1 dst=127.0.0.1 sport=40003 dport=5353 [UNREPLIED] src=172.17.0.5 dst=172.17.0.1 sport=53 dport=40003 mark=0 use=1
ipv6     10 udp      17 29 src=::1 dst=::1 sport=40004 dport=5353 src=::1 dst=::1 sport=5353 dport=40004 mark=0 use=1
";

    #[test]
    fn open_connections_are_those_whose_replies_come_from_the_container() {
        let flows = parse(TABLE);
        assert_eq!(flows.len(), 4, "IPv4 only: {flows:?}");
        assert_eq!(open_to(&flows, "172.17.0.5".parse().unwrap(), 8080), 1);
        assert_eq!(open_to(&flows, "172.17.0.6".parse().unwrap(), 8080), 1);
        assert_eq!(open_to(&flows, "172.17.0.7".parse().unwrap(), 8080), 0);
        let udp = &flows[3];
        assert_eq!((udp.protocol, udp.sport, udp.dport, udp.reply_sport), (17, 40003, 5353, 53));
        assert_eq!(udp.reply_src, "172.17.0.5".parse::<Ipv4Addr>().unwrap(), "past the [UNREPLIED] flag");
    }

    #[test]
    fn a_delete_request_names_the_original_tuple_as_ctnetlink_reads_it() {
        let f = &parse(TABLE)[3];
        let m = delete_request(f);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize, m.len());
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), 0x0102, "ctnetlink, delete");
        assert_eq!(m[16], libc::AF_INET as u8);
        // The addresses and the ports, in network order, inside the nested tuple.
        let hay = &m[20..];
        assert!(hay.windows(4).any(|w| w == [127, 0, 0, 1]));
        assert!(hay.windows(2).any(|w| w == 40003u16.to_be_bytes()));
        assert!(hay.windows(2).any(|w| w == 5353u16.to_be_bytes()));
        assert_eq!(m.len() % 4, 0);
    }
}
