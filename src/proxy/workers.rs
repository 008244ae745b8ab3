//! Worker threads and listener sockets. Each worker is a thread running a current-thread tokio
//! runtime with its own `SO_REUSEPORT` socket per listener (the kernel spreads connections
//! across them), so a connection and everything it does stay on one thread. Sockets are bound
//! in [`Workers::start`], on the caller's thread, so a taken port fails there.
//!
//! Lifecycle: accept once the first table is installed; on drain, stop accepting and ask every
//! connection to finish; on stop (after the grace period), end the runtimes.
//!
//! Gateway API listeners come and go with the configuration: [`Workers::reconcile`] (on the
//! control thread, after each install) binds the ports the table wants and does not have
//! (one `SO_REUSEPORT` socket per worker, handed over through the worker's command channel),
//! tells the accept loops of ports no longer wanted to stop (their sockets close; connections
//! already accepted finish), and leaves every other listener alone. A port that cannot be
//! bound is remembered as a failure (reported on its listeners) and tried again next time.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};

use super::server::{Serving, draining};
use super::state::Shared;
use super::timer;
use super::tls;
use super::upstream::pool;
use super::{ListenerFailure, ProxyAddrs};
use crate::routes::{GatewayPort, PortMode};

/// Running worker threads.
pub(crate) struct Workers {
    /// true: stop accepting, finish connections gracefully.
    drain: watch::Sender<bool>,
    /// true: end the worker runtimes now.
    stop: watch::Sender<bool>,
    connections: Arc<Tracker>,
    /// Each worker thread sends once when its runtime has ended.
    exited: tokio::sync::Mutex<mpsc::UnboundedReceiver<()>>,
    count: usize,
    /// Each worker's channel for new listener sockets.
    commands: Vec<mpsc::UnboundedSender<Listen>>,
    /// Gateway API ports: open ones, and the ones the last reconcile could not open. Touched
    /// only by the control thread (install), never by a request.
    gateway: std::sync::Mutex<GatewayListeners>,
}

#[derive(Default)]
struct GatewayListeners {
    open: BTreeMap<u16, OpenPort>,
    failures: Vec<ListenerFailure>,
}

struct OpenPort {
    mode: PortMode,
    /// true: the accept loops of this port stop and drop their sockets.
    close: watch::Sender<bool>,
}

/// A listener socket for one worker to accept on, until `close` turns true.
struct Listen {
    socket: std::net::TcpListener,
    kind: Kind,
    serving: Arc<Serving>,
    close: watch::Receiver<bool>,
}

#[derive(Clone, Copy)]
enum Kind {
    Plain,
    Tls,
    /// Gateway API TLS `Passthrough`: by SNI, bytes spliced.
    Passthrough,
    /// Gateway API TLS `Terminate`: our handshake, then plaintext spliced.
    TlsStream,
    /// Gateway API TCP.
    Tcp,
}

impl Workers {
    pub fn start(shared: Arc<Shared>) -> io::Result<(Workers, ProxyAddrs)> {
        let config = &shared.config;
        let count = match config.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let max_connections = match config.max_connections_per_worker {
            0 => super::default_max_connections(count),
            n => n,
        };
        let mut addrs = ProxyAddrs::default();
        let mut plain = match config.http {
            Some(addr) => {
                let (sockets, bound) = bind_group(addr, count).map_err(|err| bind_error("--http", addr, err))?;
                addrs.http = Some(bound);
                sockets.into_iter().map(Some).collect()
            }
            None => Vec::new(),
        };
        let mut secure = match config.https {
            Some(addr) => {
                let (sockets, bound) = bind_group(addr, count).map_err(|err| bind_error("--https", addr, err))?;
                addrs.https = Some(bound);
                sockets.into_iter().map(Some).collect()
            }
            None => Vec::new(),
        };
        let tls_config = match config.https {
            Some(_) => Some(tls::server_config(shared.clone(), None)?),
            None => None,
        };
        let (drain, _) = watch::channel(false);
        let (stop, _) = watch::channel(false);
        let connections = Arc::new(Tracker::default());
        let (exited_tx, exited) = mpsc::unbounded_channel();
        let mut commands = Vec::with_capacity(count);
        for index in 0..count {
            let (command_tx, command_rx) = mpsc::unbounded_channel();
            commands.push(command_tx);
            let mut listeners = Vec::new();
            if let Some(socket) = plain.get_mut(index).and_then(Option::take) {
                listeners.push((socket, Kind::Plain));
            }
            if let Some(socket) = secure.get_mut(index).and_then(Option::take) {
                listeners.push((socket, Kind::Tls));
            }
            let worker = Worker {
                serving: Arc::new(Serving::new(shared.clone(), tls_config.clone())),
                shared: shared.clone(),
                drain: drain.subscribe(),
                stop: stop.subscribe(),
                connections: connections.clone(),
                commands: command_rx,
                load: Arc::new(Load {
                    max: max_connections,
                    ..Load::default()
                }),
            };
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let exited_tx = exited_tx.clone();
            std::thread::Builder::new()
                .name(format!("vestibule-worker-{index}"))
                .spawn(move || {
                    runtime.block_on(worker.run(listeners));
                    drop(runtime);
                    let _ = exited_tx.send(());
                })?;
        }
        Ok((
            Workers {
                drain,
                stop,
                connections,
                exited: tokio::sync::Mutex::new(exited),
                count,
                commands,
                gateway: std::sync::Mutex::new(GatewayListeners::default()),
            },
            addrs,
        ))
    }

    /// Stops accepting, lets connections finish for up to `grace`, then ends the workers.
    pub async fn shutdown(&self, grace: Duration) {
        self.drain.send_replace(true);
        let _ = tokio::time::timeout(grace, self.connections.wait_idle()).await;
        self.stop.send_replace(true);
        // Runtimes end promptly once stopped; bound the wait all the same.
        let mut exited = self.exited.lock().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            for _ in 0..self.count {
                if exited.recv().await.is_none() {
                    break;
                }
            }
        })
        .await;
    }

    /// Brings the Gateway API listeners in line with `wanted` (see the module documentation).
    /// `ingress` are the Ingress listeners' addresses: a Gateway port that would share one is
    /// refused (with `SO_REUSEPORT` the kernel would split its connections between the two).
    pub fn reconcile(&self, shared: &Arc<Shared>, wanted: &[GatewayPort], ingress: ProxyAddrs) {
        let mut state = match self.gateway.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let wanted: BTreeMap<u16, PortMode> = wanted.iter().map(|port| (port.port, port.mode)).collect();
        state.open.retain(|port, open| {
            let keep = wanted.get(port) == Some(&open.mode);
            if !keep {
                open.close.send_replace(true);
                tracing::info!(port, "gateway listener closed");
            }
            keep
        });
        let mut failures = Vec::new();
        for (port, mode) in wanted {
            if state.open.contains_key(&port) {
                continue;
            }
            let addr = SocketAddr::new(shared.config.gateway_bind, port);
            let clash = [("--http", ingress.http), ("--https", ingress.https)]
                .into_iter()
                .find_map(|(flag, bound)| bound.filter(|bound| overlaps(*bound, addr)).map(|bound| (flag, bound)));
            if let Some((flag, bound)) = clash {
                failures.push(ListenerFailure {
                    port,
                    message: format!("cannot bind {addr}: port {port} is the {flag} listener's ({bound})"),
                });
                continue;
            }
            let tls_config = match mode {
                PortMode::Https => Some(tls::server_config(shared.clone(), Some(port))),
                PortMode::TlsTerminate => Some(tls::stream_server_config(shared.clone(), port)),
                PortMode::Http | PortMode::TlsPassthrough | PortMode::Tcp => None,
            }
            .transpose();
            let tls_config = match tls_config {
                Ok(config) => config,
                Err(error) => {
                    failures.push(ListenerFailure {
                        port,
                        message: format!("cannot configure TLS for {addr}: {error}"),
                    });
                    continue;
                }
            };
            let sockets = match bind_group(addr, self.count) {
                Ok((sockets, _)) => sockets,
                Err(error) => {
                    let message = bind_error("cannot bind", addr, error).to_string();
                    tracing::warn!(port, "gateway listener: {message}");
                    failures.push(ListenerFailure { port, message });
                    continue;
                }
            };
            let (close, closed) = watch::channel(false);
            let kind = match mode {
                PortMode::Http => Kind::Plain,
                PortMode::Https => Kind::Tls,
                PortMode::TlsPassthrough => Kind::Passthrough,
                PortMode::TlsTerminate => Kind::TlsStream,
                PortMode::Tcp => Kind::Tcp,
            };
            for (sender, socket) in self.commands.iter().zip(sockets) {
                let serving = Arc::new(Serving::new(shared.clone(), tls_config.clone()).for_gateway(port));
                let _ = sender.send(Listen {
                    socket,
                    kind,
                    serving,
                    close: closed.clone(),
                });
            }
            tracing::info!(%addr, protocol = mode.name(), "gateway listener opened");
            state.open.insert(port, OpenPort { mode, close });
        }
        state.failures = failures;
    }

    pub fn failures(&self) -> Vec<ListenerFailure> {
        match self.gateway.lock() {
            Ok(guard) => guard.failures.clone(),
            Err(poisoned) => poisoned.into_inner().failures.clone(),
        }
    }

    pub fn open_ports(&self) -> Vec<u16> {
        match self.gateway.lock() {
            Ok(guard) => guard.open.keys().copied().collect(),
            Err(poisoned) => poisoned.into_inner().open.keys().copied().collect(),
        }
    }

    /// Ends the workers without waiting (the proxy was dropped).
    pub fn stop_now(&self) {
        self.drain.send_replace(true);
        self.stop.send_replace(true);
    }
}

struct Worker {
    serving: Arc<Serving>,
    shared: Arc<Shared>,
    drain: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
    connections: Arc<Tracker>,
    /// New listener sockets (Gateway API ports) for this worker.
    commands: mpsc::UnboundedReceiver<Listen>,
    /// This worker's connections, shared by its listeners.
    load: Arc<Load>,
}

/// A worker's open client connections against its limit.
#[derive(Default)]
struct Load {
    open: AtomicUsize,
    max: usize,
    /// Signalled when a connection closes (the accept loop may be waiting for room).
    freed: Notify,
}

impl Load {
    /// Beyond `max`, up to this many more connections are accepted only to be answered 503.
    fn shed_room(&self) -> usize {
        (self.max / 8).max(1)
    }
}

/// One open connection of a worker (and of the proxy, for the drain).
struct Slot {
    load: Arc<Load>,
    _tracked: ConnectionGuard,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.load.open.fetch_sub(1, Ordering::AcqRel);
        crate::metrics::connection_opened(-1);
        self.load.freed.notify_one();
    }
}

impl Worker {
    async fn run(mut self, listeners: Vec<(std::net::TcpListener, Kind)>) {
        pool::configure(self.shared.config.upstream_max_idle_per_endpoint);
        tokio::spawn(timer::run());
        let mut ready = self.shared.ready.subscribe();
        tokio::select! {
            _ = ready.wait_for(|ready| *ready) => {}
            _ = self.stop.wait_for(|stop| *stop) => return,
        }
        for (socket, kind) in listeners {
            match TcpListener::from_std(socket) {
                Ok(listener) => {
                    tokio::spawn(accept_loop(
                        listener,
                        kind,
                        self.serving.clone(),
                        self.drain.clone(),
                        self.connections.clone(),
                        self.load.clone(),
                        None,
                    ));
                }
                Err(error) => tracing::error!(%error, "cannot register a listener socket"),
            }
        }
        let sweep_every = self.shared.config.upstream_idle_timeout.max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(sweep_every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                pool::sweep();
            }
        });
        loop {
            let command = tokio::select! {
                command = self.commands.recv() => command,
                _ = self.stop.wait_for(|stop| *stop) => break,
            };
            match command {
                Some(listen) => match TcpListener::from_std(listen.socket) {
                    Ok(listener) => {
                        tokio::spawn(accept_loop(
                            listener,
                            listen.kind,
                            listen.serving,
                            self.drain.clone(),
                            self.connections.clone(),
                            self.load.clone(),
                            Some(listen.close),
                        ));
                    }
                    Err(error) => tracing::error!(%error, "cannot register a gateway listener socket"),
                },
                None => {
                    let _ = self.stop.wait_for(|stop| *stop).await;
                    break;
                }
            }
        }
    }
}

/// Resolves when a Gateway API listener is to close (never for the Ingress listeners).
async fn closing(close: &mut Option<watch::Receiver<bool>>) {
    match close {
        // The sender gone (the proxy dropped) also closes.
        Some(close) => {
            let _ = close.wait_for(|closed| *closed).await;
        }
        None => std::future::pending().await,
    }
}

/// Whether two listener addresses would share a port (the same port, and the same IP or
/// either one the unspecified address).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

async fn accept_loop(
    listener: TcpListener,
    kind: Kind,
    serving: Arc<Serving>,
    mut drain: watch::Receiver<bool>,
    connections: Arc<Tracker>,
    load: Arc<Load>,
    mut close: Option<watch::Receiver<bool>>,
) {
    loop {
        // Past the limit and the room for 503s, stop accepting: new connections wait in the
        // kernel's backlog until one of ours closes.
        while load.open.load(Ordering::Acquire) >= load.max + load.shed_room() {
            let freed = load.freed.notified();
            tokio::select! {
                biased;
                _ = draining(&mut drain) => return,
                () = closing(&mut close) => return,
                () = freed => {}
            }
        }
        let accepted = tokio::select! {
            biased;
            _ = draining(&mut drain) => break,
            () = closing(&mut close) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let open = load.open.fetch_add(1, Ordering::AcqRel);
                crate::metrics::connection_opened(1);
                let slot = Slot {
                    load: load.clone(),
                    _tracked: connections.enter(),
                };
                if open >= load.max {
                    tokio::spawn(shed(stream, kind, slot));
                    continue;
                }
                let serving = serving.clone();
                let drain = drain.clone();
                tokio::spawn(async move {
                    match kind {
                        Kind::Plain => serving.plain(stream, peer, drain).await,
                        Kind::Tls => serving.tls(stream, peer, drain).await,
                        Kind::Passthrough => serving.passthrough(stream, peer).await,
                        Kind::TlsStream => serving.tls_stream(stream, peer).await,
                        Kind::Tcp => serving.tcp(stream, peer).await,
                    }
                    drop(slot);
                });
            }
            Err(error) if is_per_connection(&error) => {}
            Err(error) => {
                // Out of file descriptors or memory: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    // Dropping the listener closes this worker's socket: no more connections land here.
}

/// A connection over the worker's limit: a plain one is answered `503` and closed (its
/// request, if any, is read and dropped for up to a second so the answer is not lost to a
/// reset); a TLS one is closed.
async fn shed(stream: tokio::net::TcpStream, kind: Kind, slot: Slot) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    crate::metrics::count_connection_shed();
    let mut stream = stream;
    if let Kind::Plain = kind {
        let answer =
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nretry-after: 1\r\nconnection: close\r\n\r\n";
        let limit = Duration::from_secs(1);
        if matches!(tokio::time::timeout(limit, stream.write_all(answer)).await, Ok(Ok(()))) {
            let _ = stream.shutdown().await;
            let mut sink = [0u8; 4096];
            let _ = tokio::time::timeout(limit, async {
                for _ in 0..16 {
                    if matches!(stream.read(&mut sink).await, Ok(0) | Err(_)) {
                        break;
                    }
                }
            })
            .await;
        }
    }
    drop(slot);
}

fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted
    )
}

/// Names the listener a bind failed for, by its flag: `--http 0.0.0.0:80: address in use`.
fn bind_error(flag: &str, addr: SocketAddr, err: io::Error) -> io::Error {
    let reason = match err.kind() {
        io::ErrorKind::AddrInUse => "address in use".to_string(),
        io::ErrorKind::AddrNotAvailable => "address not available on this machine".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => err.to_string(),
    };
    io::Error::new(err.kind(), format!("{flag} {addr}: {reason}"))
}

/// Binds `count` sockets to one address with `SO_REUSEPORT`; with port 0, the first socket
/// picks the port and the others join it.
fn bind_group(addr: SocketAddr, count: usize) -> io::Result<(Vec<std::net::TcpListener>, SocketAddr)> {
    let first = bind_one(addr)?;
    let bound = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(bind_one(bound)?);
    }
    Ok((sockets, bound))
}

fn bind_one(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    // Accepted sockets inherit it on Linux; set again per connection elsewhere to be sure.
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Counts open client connections, so a drain can wait for them to finish.
#[derive(Default)]
struct Tracker {
    active: AtomicUsize,
    idle: Notify,
}

struct ConnectionGuard(Arc<Tracker>);

impl Tracker {
    fn enter(self: &Arc<Self>) -> ConnectionGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard(self.clone())
    }

    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.active.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
