//! Registries that misbehave on purpose, on loopback ports: a proxy in front of a real registry
//! that drips its answers, and a server whose manifests never end.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A server on `127.0.0.1:PORT`; stops when dropped.
pub struct Server {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<F, Fut>(handle: F) -> Server
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(handle(stream));
        }
    });
    Server { addr, task }
}

/// Reads a request's head (these requests have no body).
async fn request_head(client: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(end);
            return Ok(Some(head));
        }
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
    }
}

/// A proxy to the registry at `upstream` that passes its answers on `chunk` bytes at a time,
/// `every` apart (headers included).
pub async fn dripping(upstream: &str, chunk: usize, every: Duration) -> Server {
    let upstream = upstream.to_owned();
    serve(move |mut client| {
        let upstream = upstream.clone();
        async move {
            let Some(mut request) = request_head(&mut client).await? else {
                return Ok(());
            };
            // One request per connection: the registry closes once it has answered.
            request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
            let mut up = TcpStream::connect(&upstream).await?;
            up.write_all(&request).await?;
            let mut buf = vec![0u8; chunk];
            loop {
                let n = up.read(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                client.write_all(&buf[..n]).await?;
                tokio::time::sleep(every).await;
            }
        }
    })
    .await
}

/// A "registry" that answers every request with a manifest that never ends (chunked, no
/// length), as fast as it is read.
pub async fn endless_manifest() -> Server {
    serve(|mut client| async move {
        if request_head(&mut client).await?.is_none() {
            return Ok(());
        }
        client
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n\
                  Transfer-Encoding: chunked\r\n\r\n",
            )
            .await?;
        let mut chunk = b"4000\r\n".to_vec();
        chunk.extend(std::iter::repeat_n(b' ', 0x4000));
        chunk.extend_from_slice(b"\r\n");
        // Until the client hangs up.
        loop {
            client.write_all(&chunk).await?;
        }
    })
    .await
}

/// A proxy to the registry at `upstream` that lets through only requests bearing the token its
/// own `/token` endpoint hands out, and answers the others 401 with a bearer challenge (as Docker
/// Hub does); without `challenge`, it answers 401 with no way to get a token.
pub async fn token_gate(upstream: &str, challenge: bool) -> Server {
    const TOKEN: &str = "t0k3n";
    let upstream = upstream.to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let realm = format!("http://{addr}/token");
    let task = tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (upstream, realm) = (upstream.clone(), realm.clone());
            tokio::spawn(async move {
                let Some(mut request) = request_head(&mut client).await? else {
                    return Ok::<_, std::io::Error>(());
                };
                let text = String::from_utf8_lossy(&request).to_lowercase();
                if text.starts_with("get /token") {
                    let body = format!("{{\"token\":\"{TOKEN}\"}}");
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    return client.write_all(answer.as_bytes()).await;
                }
                if !text.contains(&format!("authorization: bearer {TOKEN}")) {
                    let header = if challenge {
                        format!("WWW-Authenticate: Bearer realm=\"{realm}\",service=\"gate\"\r\n")
                    } else {
                        String::new()
                    };
                    let answer = format!(
                        "HTTP/1.1 401 Unauthorized\r\n{header}Content-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    return client.write_all(answer.as_bytes()).await;
                }
                request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
                let mut up = TcpStream::connect(&upstream).await?;
                up.write_all(&request).await?;
                tokio::io::copy(&mut up, &mut client).await?;
                Ok(())
            });
        }
    });
    Server { addr, task }
}
