//! The standalone daemon's door: the one thread that accepts connections, and the queue
//! where they wait for a worker.
//!
//! Because the door always accepts, the daemon knows how many jobs it runs and how many
//! wait, and says so to the clients that ask (`wire::load`): one that may be turned away is
//! told at once when every worker is busy, and goes to another host instead of waiting in
//! the listen backlog as distcc 3.4's daemon leaves it. Every other connection (distcc
//! 3.4's clients, ours when they choose to wait) waits in the queue, first come first
//! served, as it would have in the backlog. Clients the access list refuses are turned
//! away here, without taking a worker.
//!
//! Serving a connection is `listener`'s; what the figures mean is `wire::load`'s.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::access;
use super::live::Live;
use crate::wire::{self, Answer, Ask, Load};

/// The most connections kept waiting here; past it the door stops accepting and the
/// kernel's backlog holds the rest, so that a crowd cannot take all our descriptors.
const MAX_QUEUED: usize = 256;

thread_local! {
    /// Whether this worker's job has ended as far as its client knows (its last note is
    /// out), so that it already counts as free.
    static RELEASED: Cell<bool> = const { Cell::new(false) };
}

/// A connection accepted and waiting for a worker.
#[derive(Debug)]
pub struct Arrival {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Whether the client asked for the load and the door answered: then the ask has been
    /// read from the connection. Otherwise a worker answers an ask it finds first.
    pub answered: bool,
    /// When the door accepted it.
    pub accepted: Instant,
}

#[derive(Debug)]
struct Queue {
    waiting: VecDeque<Arrival>,
    /// Workers serving a connection.
    busy: u32,
    stopping: bool,
}

/// The queue, and what the daemon says of its load.
#[derive(Debug)]
pub struct Door {
    cpus: u32,
    slots: u32,
    queue: Mutex<Queue>,
    /// A connection was queued, or the daemon is stopping.
    arrived: Condvar,
    /// A worker took a connection from a full queue.
    room: Condvar,
    /// Connections turned away because every slot was busy, and refused by the access
    /// list, for the metrics.
    turned_away: AtomicU64,
    denied: AtomicU64,
    /// The jobs being served and the last ones ended.
    pub live: Live,
    /// The state documents being sent.
    monitors: Arc<AtomicUsize>,
}

/// How many state documents are sent at once, and how long one may take in all.
const MAX_MONITORS: usize = 4;
const STATE_TIMEOUT: Duration = Duration::from_secs(2);

/// Writes `data` to `stream` by `deadline`, whatever the pace at which the peer reads.
fn send_by(stream: &mut TcpStream, mut data: &[u8], deadline: Instant) -> std::io::Result<()> {
    while !data.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        let n = stream.write(data)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        data = &data[n..];
    }
    Ok(())
}

impl Door {
    /// A door for a daemon of `slots` workers.
    pub fn new(slots: usize) -> Door {
        Door {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()) as u32,
            slots: u32::try_from(slots).unwrap_or(u32::MAX),
            queue: Mutex::new(Queue {
                waiting: VecDeque::new(),
                busy: 0,
                stopping: false,
            }),
            arrived: Condvar::new(),
            room: Condvar::new(),
            turned_away: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            live: Live::default(),
            monitors: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The figures now.
    pub fn load(&self) -> Load {
        self.figures(&self.lock())
    }

    /// How many connections were turned away for want of a slot, and how many the access
    /// list refused (here or at the statistics port, which [`Door::denied`] counts).
    pub fn refusals(&self) -> (u64, u64) {
        (
            self.turned_away.load(Ordering::Relaxed),
            self.denied.load(Ordering::Relaxed),
        )
    }

    /// Counts a connection the access list refused.
    pub fn denied(&self) {
        self.denied.fetch_add(1, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A worker that panicked while holding the lock left the counts whole.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn figures(&self, q: &Queue) -> Load {
        Load {
            cpus: self.cpus,
            slots: self.slots,
            running: q.busy,
            queued: q.waiting.len() as u32,
        }
    }

    /// The figures as a job ends, for its reply's notes, called by the worker serving
    /// it: from now on that worker counts as free. The client, which has its answer, lets
    /// its slot go at once, and its next job may ask while the worker closes the
    /// connection and logs: it is not turned away for that.
    pub fn load_after_job(&self) -> Load {
        let mut q = self.lock();
        if !RELEASED.with(|r| r.replace(true)) {
            q.busy = q.busy.saturating_sub(1);
        }
        self.figures(&q)
    }

    /// Answers the ask of a connection a worker serves (it reached the worker before the
    /// door could read it): admitted, with the figures.
    pub fn answer_served(&self, stream: &mut impl Write) -> std::io::Result<()> {
        let load = self.figures(&self.lock());
        stream.write_all(
            &Answer {
                admitted: true,
                load,
            }
            .encode(),
        )
    }

    /// The state document's packet, sent after the answer to a monitor's state ask.
    pub fn state_packet(&self, load: &Load) -> Vec<u8> {
        let doc = self.live.json(load);
        let mut packet = wire::header(wire::JSON, doc.len() as u32).to_vec();
        packet.extend_from_slice(doc.as_bytes());
        packet
    }

    /// Accepts connections until the daemon stops, queueing them for the workers.
    pub fn keep(&self, listener: &TcpListener, allow: &[access::Allow], stopping: &AtomicBool) {
        loop {
            {
                let mut q = self.lock();
                while q.waiting.len() >= MAX_QUEUED && !q.stopping {
                    q = self.room.wait(q).unwrap_or_else(|e| e.into_inner());
                }
            }
            let (stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(_) if stopping.load(Ordering::SeqCst) => return,
                Err(e) => {
                    log::error!("accept failed: {e}");
                    // EMFILE and the like: give the system a moment rather than spin.
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            if !access::allowed(allow, peer.ip()) {
                log::error!("connection from client '{peer}' denied by access list");
                self.denied();
                continue;
            }
            self.admit(stream, peer);
        }
    }

    /// Reads the client's ask (our client sends it alone and waits; the listening socket's
    /// deferred accept waits for a first packet, else [`FIRST_BYTES_WAIT`]), answers it,
    /// and queues the connection unless it is turned away.
    fn admit(&self, mut stream: TcpStream, peer: SocketAddr) {
        let accepted = Instant::now();
        let ask = peek_ask(&stream);
        let mut q = self.lock();
        let Some(ask) = ask else {
            q.waiting.push_back(Arrival {
                stream,
                peer,
                answered: false,
                accepted,
            });
            drop(q);
            self.arrived.notify_one();
            return;
        };
        let full = q.busy as usize + q.waiting.len() >= self.slots as usize;
        let admitted = !(full && ask == Ask::MayRefuse);
        let load = self.figures(&q);
        drop(q);
        // The ask's 12 bytes are consumed only now: it was peeked so far.
        let mut bytes = [0u8; 12];
        let taken = std::io::Read::read_exact(&mut stream, &mut bytes);
        let answer = Answer { admitted, load }.encode();
        // A dozen bytes on a fresh connection: the send buffer always has room.
        let sent = taken.and_then(|()| send_now(&stream, &answer));
        if let Err(e) = sent {
            log::debug!("failed to answer the load ask of {peer}: {e}");
            return;
        }
        if !admitted {
            self.turned_away.fetch_add(1, Ordering::Relaxed);
            log::debug!("turned {peer} away: all {} slots are busy", self.slots);
            return;
        }
        // Nothing follows a probe: it is answered, and closed; so is a monitor's ask for
        // the state, once it has the jobs.
        if ask == Ask::Probe {
            return;
        }
        if ask == Ask::State {
            // Sent from a thread of its own, so that a monitor that does not read cannot
            // hold the door; a few at a time, the others closed.
            if self.monitors.fetch_add(1, Ordering::SeqCst) >= MAX_MONITORS {
                self.monitors.fetch_sub(1, Ordering::SeqCst);
                log::debug!("too many monitors at once: {peer} closed");
                return;
            }
            let doc = self.state_packet(&load);
            let monitors = self.monitors.clone();
            let spawned = std::thread::Builder::new().spawn(move || {
                let deadline = Instant::now() + STATE_TIMEOUT;
                if let Err(e) = send_by(&mut stream, &doc, deadline) {
                    log::debug!("failed to send the state to {peer}: {e}");
                }
                monitors.fetch_sub(1, Ordering::SeqCst);
            });
            if spawned.is_err() {
                self.monitors.fetch_sub(1, Ordering::SeqCst);
                log::debug!("no thread to send the state to {peer}");
            }
            return;
        }
        let mut q = self.lock();
        q.waiting.push_back(Arrival {
            stream,
            peer,
            answered: true,
            accepted,
        });
        drop(q);
        self.arrived.notify_one();
    }

    /// The next connection to serve, waiting for one; `None` once the daemon stops. The
    /// caller counts as busy until it calls [`Door::done`].
    pub fn next(&self) -> Option<Arrival> {
        let mut q = self.lock();
        loop {
            if q.stopping {
                return None;
            }
            if let Some(arrival) = q.waiting.pop_front() {
                q.busy += 1;
                drop(q);
                self.room.notify_one();
                return Some(arrival);
            }
            q = self.arrived.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A worker has finished serving its connection.
    pub fn done(&self) {
        if !RELEASED.with(|r| r.replace(false)) {
            let mut q = self.lock();
            q.busy = q.busy.saturating_sub(1);
        }
    }

    /// Stops handing out connections and wakes every waiting worker; the ones still
    /// queued are closed, as the backlog's would be.
    pub fn stop(&self) {
        let mut q = self.lock();
        q.stopping = true;
        q.waiting.clear();
        drop(q);
        self.arrived.notify_all();
        self.room.notify_all();
    }
}

/// How long the door waits for a connection's first bytes when none have come: only
/// without deferred accept (`DISTCC_TCP_DEFER_ACCEPT=0`), where the kernel hands over
/// connections before their first packet. Our client's ask leaves right after its connect.
const FIRST_BYTES_WAIT: Duration = Duration::from_millis(5);

/// The client's ask, if its first 12 bytes are one. They are peeked, not read.
fn peek_ask(stream: &TcpStream) -> Option<Ask> {
    use nix::sys::socket::{recv, MsgFlags};
    let fd = std::os::fd::AsRawFd::as_raw_fd(stream);
    let deadline = Instant::now() + FIRST_BYTES_WAIT;
    let mut head = [0u8; 12];
    loop {
        match recv(fd, &mut head, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT) {
            Ok(n) if n == head.len() => return wire::parse_load_ask(&head),
            // Closed, or the start of something else.
            Ok(0) => return None,
            Ok(n) if head[..n.min(4)] != wire::LOAD[..n.min(4)] => return None,
            Ok(_) | Err(nix::errno::Errno::EAGAIN) => {}
            Err(_) => return None,
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        // Wakes when bytes come (or at once while a part of the ask is there: then the
        // short sleep keeps this from spinning).
        let mut fds = [nix::poll::PollFd::new(
            stream.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(
            &mut fds,
            nix::poll::PollTimeout::try_from(left).unwrap_or(nix::poll::PollTimeout::ZERO),
        );
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Sends `bytes` without waiting: the door never blocks on one client.
fn send_now(stream: &TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    let n = nix::sys::socket::send(
        std::os::fd::AsRawFd::as_raw_fd(stream),
        bytes,
        nix::sys::socket::MsgFlags::MSG_DONTWAIT | nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
    )?;
    if n == bytes.len() {
        Ok(())
    } else {
        Err(std::io::Error::other(
            "the answer did not fit in the send buffer",
        ))
    }
}
