//! A TCP proxy on 127.0.0.1 that can be frozen: while frozen it forwards nothing, in either
//! direction, and holds every connection open (new ones too) — a server that stopped
//! answering without closing anything, as a hung database or a partition looks to a client
//! whose kernel still gets ACKs.
#![allow(dead_code)]

use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy to one address; it stops with the test's runtime.
pub struct FreezeProxy {
    /// Its port on 127.0.0.1.
    pub port: u16,
    frozen: Arc<watch::Sender<bool>>,
}

impl FreezeProxy {
    /// A proxy to `target` (`host:port`), forwarding.
    pub async fn start(target: String) -> FreezeProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(watch::Sender::new(false));
        let f = frozen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (target, f) = (target.clone(), f.clone());
                tokio::spawn(async move {
                    thawed(&f).await;
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(pipe(cr, sw, f.clone()));
                    pipe(sr, cw, f).await;
                });
            }
        });
        FreezeProxy { port, frozen }
    }

    /// Stops forwarding (connections stay open, bytes wait).
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Forwards again, the held bytes first.
    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }
}

async fn thawed(f: &watch::Sender<bool>) {
    let mut rx = f.subscribe();
    let _ = rx.wait_for(|frozen| !frozen).await;
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    f: Arc<watch::Sender<bool>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        thawed(&f).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        thawed(&f).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
