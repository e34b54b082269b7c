//! The holder checks (src/files/holders/), end to end as root: the same
//! scenarios against both backends, the BPF iterators and the /proc walk
//! (`--force-holders-fallback`), which must decide alike; and a lock whose
//! descriptor is in flight over SCM_RIGHTS when its owner dies.

mod common;

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// The two backends: extra agent arguments, and what the status file says.
const BACKENDS: [(&[&str], &str); 2] = [
    (&[], "bpf iterators"),
    (&["--force-holders-fallback"], "/proc walk (forced"),
];

/// The status file's holder backend, once the agent has written it (its
/// first write follows the ready line).
fn features_holders(agent: &Agent) -> String {
    let read = || {
        let text = std::fs::read_to_string(agent.status_file()).unwrap_or_default();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        doc["features"]["holders"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    wait_for(PATIENCE, || !read().is_empty());
    read()
}

fn wait_exists(p: &Path) {
    assert!(
        wait_for(PATIENCE, || exists(p)),
        "{} never appeared",
        p.display()
    );
}

/// In a child: create an empty marker file.
fn mark(m: &CString) {
    let fd = create(m, false, b"");
    unsafe { libc::close(fd) };
}

/// In a child: open `path` read-only, or die.
fn open_ro(path: &CString) -> i32 {
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY) };
    assert!(fd >= 0, "open failed");
    fd
}

fn read_pid(p: &Path) -> i32 {
    let mut pid = 0;
    assert!(wait_for(PATIENCE, || {
        pid = std::fs::read_to_string(p)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        pid > 0
    }));
    pid
}

/// One holder scenario: a lock whose owner is killed, and what must
/// follow: `None` removed, `Some(pid)` kept as open by that process.
struct Scenario {
    name: &'static str,
    lock: PathBuf,
    owner: i32,
    holder: Option<i32>,
}

/// The agent's verdict on `lock`, from its log: "removed" or
/// "kept: open by pid N".
fn verdict(agent: &Agent, lock: &Path) -> Option<String> {
    let text = agent.log_text();
    let removed = format!("removed {}: ", lock.display());
    let kept = format!("kept {}: ", lock.display());
    // handed to a live holder: "handed PATH to pid N (comm): why"
    let handed = format!("handed {} to pid ", lock.display());
    text.lines().find_map(|l| {
        if l.contains(&removed) {
            Some("removed".to_string())
        } else {
            let rest = match (l.find(&kept), l.find(&handed)) {
                (Some(i), _) => &l[i + kept.len()..],
                (None, Some(i)) => {
                    let after = &l[i + handed.len()..];
                    &after[after.find("): ")? + 3..]
                }
                (None, None) => return None,
            };
            let why = rest.split(';').next().unwrap_or(rest);
            // "open by pid N (comm)": the comm is the process's business
            Some(format!("kept: {}", why.split(" (").next().unwrap_or(why)))
        }
    })
}

/// Set up every scenario in `dir`, kill all the owners at once, and return
/// each scenario's verdict; asserts each is the expected one.
fn run_scenarios(dir: &Path, agent: &Agent, procs: &mut Procs) -> Vec<(&'static str, String)> {
    let mut sc = Vec::new();
    let at = |n: &str| dir.join(n);

    // (a) another process opened the lock and keeps it open
    let lock = at("open.lock");
    let (c, m) = (cstr(&lock), cstr(&at("open.ready")));
    let owner = procs.fork(move || {
        create(&c, true, b"");
        park();
    });
    wait_exists(&lock);
    let c = cstr(&lock);
    let holder = procs.fork(move || {
        open_ro(&c);
        mark(&m);
        park();
    });
    wait_exists(&at("open.ready"));
    sc.push(Scenario {
        name: "open descriptor",
        lock,
        owner,
        holder: Some(holder),
    });

    // (b) the owner's child inherited the descriptor
    let lock = at("inherit.lock");
    let (c, p) = (cstr(&lock), cstr(&at("inherit.pid")));
    let owner = procs.fork(move || {
        create(&c, true, b"");
        let child = unsafe { libc::fork() };
        if child == 0 {
            park();
        }
        let fd = create(&p, true, format!("{child}").as_bytes());
        unsafe { libc::close(fd) };
        park();
    });
    let child = read_pid(&at("inherit.pid"));
    procs.0.push(child);
    sc.push(Scenario {
        name: "inherited descriptor",
        lock,
        owner,
        holder: Some(child),
    });

    // (c) mapped, the descriptor closed
    let lock = at("mapped.lock");
    let (c, m) = (cstr(&lock), cstr(&at("mapped.ready")));
    let owner = procs.fork(move || {
        create(&c, true, b"0123456789\n");
        park();
    });
    wait_exists(&lock);
    let c = cstr(&lock);
    let holder = procs.fork(move || {
        let fd = open_ro(&c);
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        assert!(p != libc::MAP_FAILED);
        unsafe { libc::close(fd) };
        mark(&m);
        park();
    });
    wait_exists(&at("mapped.ready"));
    sc.push(Scenario {
        name: "memory map",
        lock,
        owner,
        holder: Some(holder),
    });

    // (d) a process that had it open is now a zombie: it holds nothing
    let lock = at("zombie.lock");
    let c = cstr(&lock);
    let owner = procs.fork(move || {
        create(&c, true, b"");
        park();
    });
    wait_exists(&lock);
    let c = cstr(&lock);
    let zombie = procs.fork(move || {
        open_ro(&c);
    });
    assert!(
        wait_for(PATIENCE, || {
            std::fs::read_to_string(format!("/proc/{zombie}/stat"))
                .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
        }),
        "no zombie"
    );
    sc.push(Scenario {
        name: "zombie",
        lock,
        owner,
        holder: None,
    });

    // (e) the owner itself holds it when killed, with enough memory that
    // its exit takes a moment: the exiting owner is no holder
    let lock = at("exiting.lock");
    let c = cstr(&lock);
    let owner = procs.fork(move || {
        create(&c, true, b"");
        let size = 256 << 20;
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(p != libc::MAP_FAILED);
        unsafe { std::ptr::write_bytes(p.cast::<u8>(), 1, size) };
        park();
    });
    wait_exists(&lock);
    sc.push(Scenario {
        name: "exiting owner",
        lock,
        owner,
        holder: None,
    });

    // (f) held by a process in other PID and mount namespaces
    let lock = at("ns.lock");
    let c = cstr(&lock);
    let owner = procs.fork(move || {
        create(&c, true, b"");
        park();
    });
    wait_exists(&lock);
    let unshare = procs.sh(
        "exec unshare --pid --fork --kill-child --mount --propagation private \
         sh -c 'exec 3<ns.lock && echo $$ > ns.inner && exec sleep 1000'",
        dir,
    );
    // the shell in there is PID 1 of its namespace: its host PID is the
    // child of unshare; its own idea of its PID is 1
    assert_eq!(read_pid(&at("ns.inner")), 1, "unshare --pid did not take");
    let inner = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<i32>().ok())
        .expect("unshare's child");
    let ns_of = |p: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).map(|m| m.ino()).ok()
    };
    for ns in ["pid", "mnt"] {
        let theirs = ns_of(&format!("/proc/{inner}/ns/{ns}"));
        assert!(theirs.is_some());
        assert_ne!(
            theirs,
            ns_of(&format!("/proc/self/ns/{ns}")),
            "the holder shares our {ns} namespace"
        );
    }
    sc.push(Scenario {
        name: "other PID and mount namespace",
        lock,
        owner,
        holder: Some(inner),
    });

    // every owner at once: the removals are the keeps' positive controls
    for s in &sc {
        assert!(exists(&s.lock), "{} is missing", s.lock.display());
        procs.kill(s.owner, libc::SIGKILL);
    }
    let mut out = Vec::new();
    for s in &sc {
        let expect = match s.holder {
            None => "removed".to_string(),
            Some(p) => format!("kept: open by pid {p}"),
        };
        let mut got = None;
        wait_for(PATIENCE, || {
            got = verdict(agent, &s.lock);
            got.is_some()
        });
        assert_eq!(
            got.as_deref(),
            Some(expect.as_str()),
            "{}: {}\n{}",
            s.name,
            s.lock.display(),
            agent.log_text()
        );
        assert_eq!(exists(&s.lock), s.holder.is_some(), "{}", s.name);
        // the PIDs differ from run to run; the decision must not
        let decision = match s.holder {
            None => "removed",
            Some(_) => "kept: open by the scenario's holder",
        };
        out.push((s.name, decision.to_string()));
    }
    out
}

#[test]
fn both_backends_decide_every_holder_scenario_alike() {
    if !privileged() {
        return;
    }
    let mut seen = Vec::new();
    for (extra, feature) in BACKENDS {
        let dir = test_dir("holders");
        let agent = agent_for(dir.path(), extra);
        assert!(
            features_holders(&agent).starts_with(feature),
            "status file: {:?}, wanted {feature:?}",
            features_holders(&agent)
        );
        assert!(agent.log_has(&format!("holder checks: {feature}")));
        let mut procs = Procs::default();
        seen.push(run_scenarios(dir.path(), &agent, &mut procs));
    }
    assert_eq!(seen[0], seen[1], "the backends disagree");
}

/// A datagram socket bound in `dir`: the receiver of the descriptor.
fn receiver(procs: &mut Procs, dir: &Path) -> i32 {
    let sock = cstr(&dir.join("r.sock"));
    let (ready, got) = (cstr(&dir.join("r.ready")), cstr(&dir.join("r.got")));
    let pid = procs.fork(move || unsafe {
        let s = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0);
        assert!(s >= 0);
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as u16;
        for (d, &b) in addr.sun_path.iter_mut().zip(sock.as_bytes()) {
            *d = b as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as u32;
        assert_eq!(libc::bind(s, (&raw const addr).cast(), len), 0);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        mark(&ready);
        // SIGUSR1: take the descriptor; SIGUSR2: exit (closing it)
        let mut sig = 0;
        while sig != libc::SIGUSR1 {
            libc::sigwait(&set, &mut sig);
        }
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut cbuf = [0u64; 8];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf);
        assert_eq!(libc::recvmsg(s, &mut msg, 0), 1);
        let cm = libc::CMSG_FIRSTHDR(&msg);
        assert!(!cm.is_null() && (*cm).cmsg_type == libc::SCM_RIGHTS);
        mark(&got);
        while sig != libc::SIGUSR2 {
            libc::sigwait(&set, &mut sig);
        }
    });
    wait_exists(&dir.join("r.ready"));
    pid
}

/// The owner: creates `lock`, sends its descriptor to the receiver's
/// socket, closes its own, parks.
fn sender(procs: &mut Procs, dir: &Path, lock: &Path) -> i32 {
    let (c, sock, sent) = (
        cstr(lock),
        cstr(&dir.join("r.sock")),
        cstr(&dir.join("o.sent")),
    );
    let pid = procs.fork(move || unsafe {
        let fd = create(&c, true, b"");
        let s = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0);
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as u16;
        for (d, &b) in addr.sun_path.iter_mut().zip(sock.as_bytes()) {
            *d = b as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as u32;
        assert_eq!(libc::connect(s, (&raw const addr).cast(), len), 0);
        let mut byte = [b'x'];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut cbuf = [0u64; 8];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
        let cm = libc::CMSG_FIRSTHDR(&msg);
        (*cm).cmsg_level = libc::SOL_SOCKET;
        (*cm).cmsg_type = libc::SCM_RIGHTS;
        (*cm).cmsg_len = libc::CMSG_LEN(4) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cm).cast::<i32>(), fd);
        assert_eq!(libc::sendmsg(s, &msg, 0), 1);
        libc::close(fd);
        mark(&sent);
        park();
    });
    wait_exists(&dir.join("o.sent"));
    pid
}

#[test]
fn a_descriptor_in_flight_keeps_the_lock_until_its_receiver_is_done() {
    if !privileged() {
        return;
    }
    for (extra, _) in BACKENDS {
        let dir = test_dir("inflight");
        let d = dir.path();
        let agent = agent_for(d, extra);
        let mut procs = Procs::default();
        let recv = receiver(&mut procs, d);
        let lock = d.join("flight.lock");
        let owner = sender(&mut procs, d, &lock);
        // the positive control, killed in the same window
        let control = d.join("control.lock");
        let c = cstr(&control);
        let other = procs.fork(move || {
            create(&c, true, b"");
            park();
        });
        wait_exists(&control);
        assert!(exists(&lock));
        // only the message in the receiver's queue holds the file now
        procs.kill(owner, libc::SIGKILL);
        procs.kill(other, libc::SIGKILL);
        let name = path_arg(&lock);
        assert!(
            agent.wait_log(&[
                &format!("kept {name}: "),
                "a descriptor in flight?",
                "killed by SIGKILL"
            ]),
            "{extra:?}\n{}",
            agent.log_text()
        );
        assert!(
            agent.wait_log(&[&format!("removed {}: ", control.display())]),
            "{}",
            agent.log_text()
        );
        assert!(exists(&lock), "{extra:?}: {name} was removed");

        // the receiver takes it: the next look finds it open there
        procs.kill(recv, libc::SIGUSR1);
        wait_exists(&d.join("r.got"));
        assert!(
            wait_for(Duration::from_secs(30), || agent
                .log_has(&format!("handed {name} to pid {recv} "))
                && agent.log_has(&format!("open by pid {recv}"))),
            "{extra:?}\n{}",
            agent.log_text()
        );
        assert!(exists(&lock));
        // and once it is done, the lock goes
        procs.kill(recv, libc::SIGUSR2);
        assert!(
            agent.wait_log(&[&format!("removed {name}: "), "killed by SIGKILL"]),
            "{extra:?}\n{}",
            agent.log_text()
        );
        assert!(!exists(&lock));
    }
}
