//! Connections of Gateway API TLS and TCP ports: no HTTP, bytes spliced to a backend endpoint.
//!
//! - TLS `Passthrough`: the ClientHello is read (bounded in size and by the TLS handshake
//!   timeout) and parsed for its SNI, which picks the TLSRoute; every byte read, the ClientHello
//!   included, goes to the backend, which completes the handshake with its own certificate.
//! - TLS `Terminate`: the handshake is ours (certificate by SNI, no ALPN), then the plaintext
//!   goes to the TLSRoute's backend.
//! - TCP: every connection goes to the port's TCPRoute.
//!
//! No route, no backend (an invalid one, weight 0, no endpoints) or a failed connect: the
//! client's connection is closed. A splice ends when either side closes, or when no byte moved
//! either way for the tunnel idle timeout (`--tunnel-idle-timeout`, as for upgrades).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rustls::server::Acceptor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::client_io::ClientIo;
use super::server::Serving;
use super::upgrade::copy_until_idle;
use super::upstream::Upstream;
use crate::routes::SplitTarget;

/// The most a ClientHello may take (records and all). Real ones are under 2 KiB; a post-quantum
/// key share adds about 1.2 KiB.
const MAX_CLIENT_HELLO: usize = 16 * 1024;

impl Serving {
    /// A connection on a TLS `Passthrough` port.
    pub async fn passthrough(&self, stream: TcpStream, peer: SocketAddr) {
        let mut stream = stream;
        let limit = self.shared.config.tls_handshake_timeout;
        let (hello, sni) = match timeout(limit, read_client_hello(&mut stream)).await {
            Ok(Some(read)) => read,
            Ok(None) => {
                tracing::debug!(%peer, "TLS passthrough: no valid ClientHello");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS passthrough: ClientHello timed out");
                return;
            }
        };
        let Some(upstream) = self.stream_upstream(sni.as_deref()) else {
            tracing::debug!(%peer, sni = sni.as_deref().unwrap_or(""), "TLS passthrough: no route or backend");
            return;
        };
        let Some(mut backend) = self.connect(&upstream, peer).await else {
            return;
        };
        if backend.write_all(&hello).await.is_err() {
            return;
        }
        let mut client = ClientIo::new(stream, Bytes::new(), self.shared.config.client_write_timeout);
        if let Err(error) = copy_until_idle(&mut client, &mut backend, self.shared.config.tunnel_idle_timeout).await {
            tracing::debug!(%peer, %error, "TLS passthrough ended");
        }
    }

    /// A connection on a TLS `Terminate` port: our handshake, then the plaintext spliced.
    pub async fn tls_stream(&self, stream: TcpStream, peer: SocketAddr) {
        let Some(acceptor) = &self.tls else { return };
        let stream = ClientIo::new(stream, Bytes::new(), self.shared.config.client_write_timeout);
        let mut stream = match timeout(self.shared.config.tls_handshake_timeout, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "TLS handshake failed");
                return;
            }
            Err(_) => return,
        };
        let sni = stream.get_ref().1.server_name().map(str::to_string);
        let Some(upstream) = self.stream_upstream(sni.as_deref()) else {
            tracing::debug!(%peer, sni = sni.as_deref().unwrap_or(""), "TLS: no route or backend");
            let _ = stream.shutdown().await;
            return;
        };
        let Some(mut backend) = self.connect(&upstream, peer).await else {
            let _ = stream.shutdown().await;
            return;
        };
        if let Err(error) = copy_until_idle(&mut stream, &mut backend, self.shared.config.tunnel_idle_timeout).await {
            tracing::debug!(%peer, %error, "TLS stream ended");
        }
    }

    /// A connection on a TCP port.
    pub async fn tcp(&self, stream: TcpStream, peer: SocketAddr) {
        let Some(upstream) = self.stream_upstream(None) else {
            tracing::debug!(%peer, "TCP: no route or backend");
            return;
        };
        let Some(mut backend) = self.connect(&upstream, peer).await else {
            return;
        };
        let mut client = ClientIo::new(stream, Bytes::new(), self.shared.config.client_write_timeout);
        if let Err(error) = copy_until_idle(&mut client, &mut backend, self.shared.config.tunnel_idle_timeout).await {
            tracing::debug!(%peer, %error, "TCP stream ended");
        }
    }

    /// The backend of this port's route for `sni`, picked by weight; `None` when there is no
    /// route, the pick is an invalid backend, or the backend has no endpoint.
    fn stream_upstream(&self, sni: Option<&str>) -> Option<Arc<Upstream>> {
        let installed = self.shared.current.load();
        let port = installed.table.gateway_port(self.gateway_port?)?;
        let route = port.streams.find(sni)?;
        match route.backends.pick()? {
            SplitTarget::Backend(id) => installed
                .upstreams
                .get(id)
                .filter(|upstream| upstream.has_endpoints())
                .cloned(),
            SplitTarget::Respond(_) => None,
        }
    }

    async fn connect(&self, upstream: &Upstream, peer: SocketAddr) -> Option<TcpStream> {
        match upstream.connect_stream(self.shared.config.connect_timeout).await {
            Ok(stream) => Some(stream),
            Err(_) => {
                tracing::debug!(%peer, backend = %upstream.key, "stream: cannot connect to the backend");
                None
            }
        }
    }
}

/// Reads until a whole ClientHello is in: the bytes read (all of them, for the backend) and the
/// SNI, if the client sent one. `None`: the peer closed, sent more than [`MAX_CLIENT_HELLO`], or
/// sent something that is not a ClientHello.
async fn read_client_hello(stream: &mut TcpStream) -> Option<(Bytes, Option<String>)> {
    let mut acceptor = Acceptor::default();
    let mut read = BytesMut::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    // Bounded: every round reads at least one byte, and at most MAX_CLIENT_HELLO are taken.
    loop {
        let room = MAX_CLIENT_HELLO.saturating_sub(read.len()).min(chunk.len());
        if room == 0 {
            return None;
        }
        let n = stream.read(chunk.get_mut(..room)?).await.ok()?;
        if n == 0 {
            return None;
        }
        let fresh = chunk.get(..n)?;
        read.extend_from_slice(fresh);
        let mut rest = fresh;
        while !rest.is_empty() {
            match acceptor.read_tls(&mut rest) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
        match acceptor.accept() {
            Ok(None) => continue,
            Ok(Some(accepted)) => {
                let sni = accepted.client_hello().server_name().map(str::to_string);
                return Some((read.freeze(), sni));
            }
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// A ClientHello as rustls's client writes it, for `name`.
    fn client_hello(name: &str) -> Vec<u8> {
        let roots = rustls::RootCertStore::empty();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let server = rustls::pki_types::ServerName::try_from(name.to_string()).expect("name");
        let mut client = rustls::ClientConnection::new(Arc::new(config), server).expect("client");
        let mut out = Vec::new();
        client.write_tls(&mut out).expect("hello");
        out
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.expect("connect"), accepted.expect("accept").0)
    }

    #[tokio::test]
    async fn reads_the_sni_and_keeps_every_byte_even_split_in_pieces() {
        let hello = client_hello("db.example");
        let (mut client, mut server) = pair().await;
        let sent = hello.clone();
        let writer = tokio::spawn(async move {
            for piece in sent.chunks(7) {
                client.write_all(piece).await.expect("write");
                client.flush().await.expect("flush");
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            client
        });
        let (read, sni) = read_client_hello(&mut server).await.expect("a ClientHello");
        assert_eq!(sni.as_deref(), Some("db.example"));
        assert_eq!(&read[..], &hello[..]);
        drop(writer.await);
    }

    #[tokio::test]
    async fn not_tls_or_too_long_is_refused() {
        let (mut client, mut server) = pair().await;
        client
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("write");
        assert!(read_client_hello(&mut server).await.is_none());

        // A record header announcing a huge handshake message, then filler: cut off at the limit.
        let (mut client, mut server) = pair().await;
        let writer = tokio::spawn(async move {
            let mut data = vec![22u8, 3, 1, 0x40, 0x00, 1, 0xff, 0xff, 0xff];
            data.resize(40 * 1024, 0);
            let _ = client.write_all(&data).await;
            client
        });
        assert!(read_client_hello(&mut server).await.is_none());
        drop(writer.await);
    }
}
