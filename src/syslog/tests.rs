//! Each transport against a real receiver on this machine (loopback, a Unix socket in a
//! temporary directory), including a receiver that restarts.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket, UnixDatagram};

use super::*;

const WAIT: Duration = Duration::from_secs(10);

/// Reads octet-counted frames (`LEN SP MSG`) until `n` messages arrived.
async fn read_frames(stream: &mut tokio::net::TcpStream, n: usize) -> Vec<String> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while out.len() < n {
        let mut chunk = [0u8; 4096];
        let got = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("frame in time")
            .unwrap();
        assert!(got > 0, "connection closed after {} frames", out.len());
        buf.extend_from_slice(&chunk[..got]);
        while let Some(sp) = buf.iter().position(|&b| b == b' ') {
            let len: usize = std::str::from_utf8(&buf[..sp]).unwrap().parse().unwrap();
            if buf.len() < sp + 1 + len {
                break;
            }
            out.push(String::from_utf8(buf[sp + 1..sp + 1 + len].to_vec()).unwrap());
            buf.drain(..sp + 1 + len);
        }
    }
    out
}

#[tokio::test]
async fn tcp_frames_and_survives_a_receiver_restart() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Syslog::with_destinations(23, vec![Destination::Tcp(addr)]);

    log.notice("%CRYPTO-5-SESSION_STATUS: Crypto session is UP. Peer 192.0.2.2:500");
    log.notice("second");
    let (mut conn, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let got = read_frames(&mut conn, 2).await;
    // <189> = local7 (23) * 8 + notice (5); the message ends the line, framing keeps it whole.
    assert!(got[0].starts_with("<189>"), "{got:?}");
    assert!(got[0].contains(" vpnd["), "{got:?}");
    assert!(
        got[0].ends_with(": %CRYPTO-5-SESSION_STATUS: Crypto session is UP. Peer 192.0.2.2:500")
    );
    assert!(got[1].ends_with(": second"));

    // The receiver goes away (its connection and its listener), a notice is sent while it is
    // down, then it comes back on the same port: that notice and the next arrive.
    drop(conn);
    drop(listener);
    tokio::time::sleep(Duration::from_millis(100)).await;
    log.notice("while down");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listener = TcpListener::bind(addr).await.unwrap();
    log.notice("after restart");
    let (mut conn, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let got = read_frames(&mut conn, 2).await;
    assert!(got[0].ends_with(": while down"), "{got:?}");
    assert!(got[1].ends_with(": after restart"), "{got:?}");
}

#[tokio::test]
async fn udp_carries_one_message_per_datagram() {
    let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let log = Syslog::with_destinations(20, vec![Destination::Udp(rx.local_addr().unwrap())]);
    log.notice("hello");
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(WAIT, rx.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let msg = std::str::from_utf8(&buf[..n]).unwrap();
    assert!(msg.starts_with("<165>"), "local4.notice: {msg}");
    assert!(msg.ends_with(": hello"), "{msg}");
}

#[tokio::test]
async fn local_socket_without_hostname_and_across_a_restart() {
    let dir = std::env::temp_dir().join(format!("vpnd-syslog-test-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("log");
    let _ = std::fs::remove_file(&path);
    let rx = UnixDatagram::bind(&path).unwrap();
    let log = Syslog::with_destinations(20, vec![Destination::Local(path.clone())]);
    log.notice("one");
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(WAIT, rx.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let msg = std::str::from_utf8(&buf[..n]).unwrap().to_string();
    // `<165>Mmm dd hh:mm:ss vpnd[pid]: one`: the local daemon adds the host itself.
    // The timestamp is 15 characters wide (RFC 3164 4.1.2: the day padded with a space).
    let after_pri = &msg[msg.find('>').unwrap() + 1..];
    assert!(after_pri[15..].starts_with(" vpnd["), "{msg}");

    // syslogd restarts: the socket file disappears for a while, then a new one is bound.
    drop(rx);
    std::fs::remove_file(&path).unwrap();
    log.notice("two");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rx = UnixDatagram::bind(&path).unwrap();
    let n = tokio::time::timeout(WAIT, rx.recv(&mut buf))
        .await
        .expect("the queued notice after the restart")
        .unwrap();
    assert!(std::str::from_utf8(&buf[..n]).unwrap().ends_with(": two"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn shutdown_sends_what_is_queued() {
    let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let log = Syslog::with_destinations(20, vec![Destination::Udp(rx.local_addr().unwrap())]);
    log.notice("last words");
    log.shutdown(WAIT).await;
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(WAIT, rx.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(std::str::from_utf8(&buf[..n])
        .unwrap()
        .ends_with(": last words"));
}

#[tokio::test]
async fn without_a_local_syslog_daemon_notices_are_dropped_not_queued() {
    let dir = std::env::temp_dir().join(format!("vpnd-syslog-absent-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("log");
    let _ = std::fs::remove_file(&path);
    let log = Syslog::with_destinations(20, vec![Destination::Local(path.clone())]);
    for i in 0..100 {
        log.notice(&format!("n{i}"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Nothing held back (no "queue full" errors later), and the metric says so.
    assert_eq!(log.queued(), vec![(format!("unix:{}", path.display()), 0)]);
    // A syslog daemon appears: the next notice reaches it.
    let rx = UnixDatagram::bind(&path).unwrap();
    log.notice("now");
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(WAIT, rx.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(std::str::from_utf8(&buf[..n]).unwrap().ends_with(": now"));
    let _ = std::fs::remove_dir_all(&dir);
}
