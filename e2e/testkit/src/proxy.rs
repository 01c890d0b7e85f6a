//! A TCP proxy in front of a node's RPC port that cuts a connection at a chosen moment: when
//! armed with [`CuttingProxy::cut_on`], the first reply that carries one of the given texts is
//! not delivered, and both sides of that connection are closed. The node does whatever the
//! request asked; the client only sees its connection go.
//!
//! WebSocket frames from the server are not masked, so a JSON-RPC notification can be recognized
//! by its method name, e.g. `"method":"transactionWatch_v1_watchEvent"`: the first report on a
//! transaction the node has taken.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use anyhow::Result;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// The texts by which the first report on a submitted transaction is recognized, for both
/// transaction APIs a node serves (`transactionWatch_v1` and the legacy `author_`).
pub const TRANSACTION_REPORT: [&str; 2] = [
    r#""method":"transactionWatch_v1_watchEvent""#,
    r#""method":"author_extrinsicUpdate""#,
];

/// A proxy on a free loopback port to `target`; stopped when dropped.
pub struct CuttingProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Shared {
    /// Texts that cut the connection whose reply carries one, once.
    armed: Mutex<Vec<String>>,
    cuts: AtomicUsize,
}

impl Shared {
    /// Whether `chunk` cuts its connection (and disarms the proxy if so).
    fn cuts(&self, chunk: &[u8]) -> bool {
        let mut armed = self.armed.lock().expect("proxy lock");
        if armed.is_empty() {
            return false;
        }
        let text = String::from_utf8_lossy(chunk);
        if armed.iter().any(|t| text.contains(t.as_str())) {
            armed.clear();
            self.cuts.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        false
    }
}

impl CuttingProxy {
    /// Listens on a free loopback port and relays every connection to `target` (a connection
    /// made while the target is down is closed at once).
    pub async fn start(target: SocketAddr) -> Result<CuttingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn({
            let shared = shared.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(relay(client, target, shared.clone()));
                }
            }
        });
        Ok(CuttingProxy { addr, shared, task })
    }

    /// The WebSocket URL of the proxy.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Arms the proxy: the next reply (on any connection) that carries one of `texts` is
    /// dropped with its connection.
    pub fn cut_on(&self, texts: &[&str]) {
        *self.shared.armed.lock().expect("proxy lock") =
            texts.iter().map(|t| t.to_string()).collect();
    }

    /// How many connections were cut so far.
    pub fn cuts(&self) -> usize {
        self.shared.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, target: SocketAddr, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let up = tokio::io::copy(&mut from_client, &mut to_server);
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_server.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if shared.cuts(&buf[..n]) || to_client.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Either side ending (or a cut) ends both: the halves are dropped, closing the sockets.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}
