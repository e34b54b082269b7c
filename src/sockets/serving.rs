//! Is a live process still serving a half-closed connection? The rule,
//! pure, from the facts the survey reads in the kernel (bpf/sockets.h).
//!
//! CLOSE_WAIT only says the peer closed its side. A server that got a
//! request and a FIN (`shutdown(SHUT_WR)`) and is still working on the
//! reply — nginx waiting on its upstream with `proxy_ignore_client_abort`,
//! a long poll, a report that takes minutes — is in CLOSE_WAIT and idle,
//! exactly like a leak. What tells them apart (measured against real
//! programs, README "CLOSE_WAIT sockets"):
//!
//! - **Watched**: something waits on the socket. Every poll/select/epoll
//!   registration puts an entry on the socket's wait queue (epoll's stays
//!   until `EPOLL_CTL_DEL` or close), and so does a thread blocked in
//!   recv/send on it. An event loop that still has the socket registered,
//!   or a thread still reading it, is still serving it. A leaked socket is
//!   one nobody waits on.
//! - **Unanswered**: this end is the server (a listener on its local port
//!   in its namespace) and the peer's last data came after the last data
//!   this end sent (or it never sent any): a request it has not answered
//!   yet, as a thread-per-connection server blocked on a slow backend
//!   holds it. A server that leaks answered first, then leaked.
//!
//! What this cannot tell apart, kept (safe side): an event loop that
//! forgot a socket but left it registered (edge-triggered epoll never
//! wakes for it again), and a server that leaked a connection without ever
//! answering its request. Jiffies order the last send and the last
//! receive: a request that came within the same tick as the previous
//! reply counts as answered.

use crate::sockets::kernel::Facts;

/// Why a half-closed connection is still served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Serving {
    /// Nothing waits on it, and it owes no reply: nobody serves it.
    No,
    /// On its wait queue: an epoll registration (`epoll`), or another
    /// waiter (a thread blocked on it, poll/select).
    Watched { epoll: bool },
    /// The server end, with a request it has not answered.
    Unanswered,
}

impl Serving {
    pub fn is_served(self) -> bool {
        self != Serving::No
    }

    /// Metrics label and JSON value.
    pub fn label(self) -> &'static str {
        match self {
            Serving::No => "none",
            Serving::Watched { epoll: true } => "epoll",
            Serving::Watched { epoll: false } => "waiter",
            Serving::Unanswered => "unanswered",
        }
    }

    /// For log lines: "watched by an epoll registration", …
    pub fn describe(self) -> &'static str {
        match self {
            Serving::No => "served by nobody",
            Serving::Watched { epoll: true } => {
                "served: in an epoll interest list (an event loop still has it)"
            }
            Serving::Watched { epoll: false } => {
                "served: a thread waits on it (blocked in a call, or poll/select)"
            }
            Serving::Unanswered => {
                "served: the server end, with a request it has not answered (data came in after its last reply)"
            }
        }
    }
}

/// `a` later than `b`, on the kernel's wrapping 32-bit jiffies.
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// The rule. `passive`: a listener is on the socket's local port in its
/// network namespace (the connection was accepted: this end is the server).
pub fn serving(f: &Facts, data_received: u64, passive: bool) -> Serving {
    if f.watched != 0 || f.epoll != 0 {
        return Serving::Watched {
            epoll: f.epoll != 0,
        };
    }
    let owes_reply = data_received > 0 && (f.data_segs_out == 0 || after(f.lrcvtime, f.lsndtime));
    if passive && owes_reply {
        return Serving::Unanswered;
    }
    Serving::No
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(watched: u8, epoll: u8, lrcv: u32, lsnd: u32, segs_out: u32) -> Facts {
        Facts {
            watched,
            epoll,
            lrcvtime: lrcv,
            lsndtime: lsnd,
            data_segs_out: segs_out,
            ..Default::default()
        }
    }

    #[test]
    fn watched_sockets_are_served_whatever_else() {
        let f = facts(1, 1, 10, 20, 3);
        assert_eq!(serving(&f, 0, false), Serving::Watched { epoll: true });
        let f = facts(1, 0, 10, 20, 3);
        assert_eq!(serving(&f, 100, true), Serving::Watched { epoll: false });
        // an epoll registration counts even if the wait queue read empty
        assert_eq!(
            serving(&facts(0, 1, 0, 0, 0), 0, false),
            Serving::Watched { epoll: true }
        );
    }

    #[test]
    fn a_server_owing_a_reply_is_served() {
        // request in (jiffy 20) after the last reply (10)
        assert_eq!(
            serving(&facts(0, 0, 20, 10, 4), 300, true),
            Serving::Unanswered
        );
        // never replied at all (lsndtime is the accept's jiffy)
        assert_eq!(
            serving(&facts(0, 0, 5, 5, 0), 80, true),
            Serving::Unanswered
        );
        // jiffies wrap
        assert_eq!(
            serving(&facts(0, 0, 3, u32::MAX - 2, 1), 80, true),
            Serving::Unanswered
        );
    }

    #[test]
    fn leaks_are_served_by_nobody() {
        // answered (reply after the request), then the peer closed
        assert_eq!(serving(&facts(0, 0, 10, 20, 1), 80, true), Serving::No);
        // same tick: counts as answered
        assert_eq!(serving(&facts(0, 0, 10, 10, 1), 80, true), Serving::No);
        // the peer sent nothing (connected and closed)
        assert_eq!(serving(&facts(0, 0, 5, 5, 0), 0, true), Serving::No);
        // the client end of a pooled connection: its reply came in last,
        // but a client owes nobody a reply
        assert_eq!(serving(&facts(0, 0, 20, 10, 1), 500, false), Serving::No);
    }
}
