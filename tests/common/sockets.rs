//! Real TCP sockets for the socket tests (daemon and sweep): free ports,
//! sockets driven into CLOSE_WAIT, their state as the kernel reports it,
//! and a writer blocked against a peer that stopped reading.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::wait_for;

pub const TCP_ESTABLISHED: u8 = 1;
pub const TCP_CLOSE: u8 = 7;
pub const TCP_CLOSE_WAIT: u8 = 8;

/// A port nobody listens on now (the kernel's pick), on `loopback`
/// (`127.0.0.1`, `[::1]`, `[::]`).
pub fn free_port(loopback: &str) -> u16 {
    TcpListener::bind(format!("{loopback}:0"))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The TCP state of a socket (tcp_info's first byte: 1 ESTABLISHED,
/// 7 CLOSE, 8 CLOSE_WAIT).
pub fn tcp_state(s: &TcpStream) -> u8 {
    let mut info = [0u8; 256];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: info is large enough for struct tcp_info; len says so.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0, "TCP_INFO: {}", io::Error::last_os_error());
    info[0]
}

/// Poll the state of `s` until it is `want` or `patience` passes.
pub fn wait_state(s: &TcpStream, want: u8, patience: Duration) -> bool {
    wait_for(patience, || tcp_state(s) == want)
}

/// Bytes in the send queue, unsent or unacknowledged (SIOCOUTQ, the same
/// write_seq - snd_una that inet_diag reports as idiag_wqueue).
pub fn send_queue(s: &TcpStream) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int.
    let r = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    assert_eq!(r, 0, "SIOCOUTQ: {}", io::Error::last_os_error());
    n as usize
}

/// send(2) without SIGPIPE: the error the application would see.
pub fn send(s: &TcpStream, data: &[u8]) -> io::Result<usize> {
    // SAFETY: data outlives the call.
    let n = unsafe {
        libc::send(
            s.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A server-side socket in CLOSE_WAIT on `l`: the client connected and
/// closed. The server's socket and the client's address.
pub fn close_wait_on(l: &TcpListener) -> (TcpStream, SocketAddr) {
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, peer) = l.accept().unwrap();
    drop(c);
    assert!(
        wait_state(&s, TCP_CLOSE_WAIT, Duration::from_secs(5)),
        "the server socket did not reach CLOSE_WAIT"
    );
    (s, peer)
}

/// A listener on `listen` and one server-side socket in CLOSE_WAIT on it.
pub fn close_wait(listen: SocketAddr) -> (TcpStream, TcpListener, SocketAddr) {
    let l = TcpListener::bind(listen).unwrap();
    let (s, peer) = close_wait_on(&l);
    (s, l, peer)
}

/// Issue 12 item 7: a server in CLOSE_WAIT blocked in send(). The peer
/// sent its request, half-closed (shutdown(SHUT_WR)) and stopped reading;
/// the server writes a response far larger than both sockets' buffers, so
/// several MB wait in its send queue against a zero window. No data segment
/// leaves (zero-window probes carry none), so the kernel's last-send time
/// stands still: only the non-empty send queue says the socket is busy.
pub struct BlockedWriter {
    /// The server's socket (a clone of the one the writer thread uses).
    pub server: TcpStream,
    /// The client's address, as the agent's log lines name it.
    pub peer: SocketAddr,
    client: Option<TcpStream>,
    writer: Option<thread::JoinHandle<io::Result<()>>>,
    /// -1 while blocked; then 0 (completed) or the errno send() returned.
    done: Arc<AtomicI32>,
}

/// The response: more than the sender's and the receiver's buffers hold
/// together (tcp_wmem and tcp_rmem maxima are 4 and 6 MiB by default).
const RESPONSE: usize = 32 << 20;

impl BlockedWriter {
    /// Connect to `l`, half-close, and start the writer; returns once the
    /// writer is blocked (its queue stopped growing) with at least 1 MiB
    /// queued.
    pub fn start(l: &TcpListener) -> BlockedWriter {
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, peer) = l.accept().unwrap();
        client.shutdown(Shutdown::Write).unwrap(); // request sent
        assert!(
            wait_state(&server, TCP_CLOSE_WAIT, Duration::from_secs(5)),
            "the server socket did not reach CLOSE_WAIT"
        );
        let done = Arc::new(AtomicI32::new(-1));
        let (w, d) = (server.try_clone().unwrap(), done.clone());
        let writer = thread::spawn(move || {
            let chunk = vec![b'x'; 64 << 10];
            let mut left = RESPONSE;
            let r = loop {
                if left == 0 {
                    break Ok(());
                }
                match send(&w, &chunk[..left.min(chunk.len())]) {
                    Ok(k) => left -= k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            let code = match &r {
                Ok(()) => 0,
                Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
            };
            d.store(code, Ordering::SeqCst);
            r
        });
        let b = BlockedWriter {
            server,
            peer,
            client: Some(client),
            writer: Some(writer),
            done,
        };
        // blocked: the queue has not grown for a while, and holds MBs
        let mut last = (usize::MAX, Instant::now());
        let blocked = wait_for(Duration::from_secs(10), || {
            let q = send_queue(&b.server);
            if q != last.0 {
                last = (q, Instant::now());
            }
            q >= 1 << 20 && last.1.elapsed() >= Duration::from_millis(500)
        });
        assert!(
            blocked && !b.finished(),
            "the writer did not block: {} bytes queued; its send(): {}",
            send_queue(&b.server),
            b.outcome()
        );
        b.assert_blocked();
        b
    }

    /// The writer thread has returned (completed, or failed).
    pub fn finished(&self) -> bool {
        self.done.load(Ordering::SeqCst) >= 0
    }

    /// What the writer's send() returned, once it did.
    pub fn outcome(&self) -> String {
        match self.done.load(Ordering::SeqCst) {
            -1 => "still blocked".into(),
            0 => "completed".into(),
            e => format!("failed: {}", io::Error::from_raw_os_error(e)),
        }
    }

    /// Still in CLOSE_WAIT, still blocked in send() with MBs queued.
    pub fn assert_blocked(&self) {
        let state = tcp_state(&self.server);
        assert!(
            state == TCP_CLOSE_WAIT && !self.finished(),
            "the blocked writer is in TCP state {state}, not CLOSE_WAIT; its send(): {}",
            self.outcome()
        );
        let q = send_queue(&self.server);
        assert!(q >= 1 << 20, "only {q} bytes queued");
    }

    /// Bytes queued in the server's send queue now.
    pub fn queued(&self) -> usize {
        send_queue(&self.server)
    }

    /// The peer reads the whole response: the writer completes and its
    /// queue empties; the server stays in CLOSE_WAIT, now idle. Returns
    /// what the writer reported.
    pub fn drain(&mut self) -> io::Result<()> {
        let mut client = self.client.take().expect("drained once");
        let reader = thread::spawn(move || {
            use std::io::Read;
            let mut buf = vec![0u8; 1 << 20];
            let mut got = 0usize;
            while got < RESPONSE {
                match client.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            (got, client)
        });
        let r = self.writer.take().unwrap().join().unwrap();
        let (got, client) = reader.join().unwrap();
        self.client = Some(client);
        if r.is_ok() {
            assert_eq!(got, RESPONSE, "the peer did not get the whole response");
        }
        r
    }
}

impl Drop for BlockedWriter {
    fn drop(&mut self) {
        // unblock the writer thread whatever happened: reset both ends
        let _ = self.server.shutdown(Shutdown::Both);
        self.client.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}
