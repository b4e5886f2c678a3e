//! The event-driven echo server: the fast reference that labrun's own speed is judged by.
//!
//! One tokio task per connection on a runtime of half the CPUs' threads (one event loop on
//! a 2-CPU machine), a 64 KiB buffer per connection and no per-message allocation. It echoes exactly what it reads, as fast as
//! the kernel delivers it, so a benchmark against it measures the client, not the server.

use std::io;
use std::net::TcpListener as StdListener;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BUFFER_BYTES: usize = 64 * 1024;
/// Accept-queue length: a connection storm of thousands of clients must queue, not be
/// dropped into one-second SYN retransmits (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

/// Serves every connection concurrently until killed.
pub fn serve(listener: StdListener) -> io::Result<()> {
    // Listening again on a listening socket only resizes its accept queue (Linux).
    rustix::net::listen(&listener, BACKLOG)?;
    listener.set_nonblocking(true)?;
    // Half the CPUs, like labrun's client workers: the load generator shares the machine,
    // and on a small one a single event loop (no cross-thread wake-ups) is the fastest.
    let threads = std::thread::available_parallelism().map_or(1, |cpus| (cpus.get() / 2).max(1));
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    let runtime = builder.enable_io().enable_time().build()?;
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => drop(tokio::spawn(echo_until_closed(stream))),
                // Out of descriptors under a connection storm, or a client that reset while
                // queued: report it and keep serving the others.
                Err(err) => {
                    eprintln!("accept failed: {err}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    })
}

async fn echo_until_closed(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buffer = vec![0u8; BUFFER_BYTES];
    loop {
        let received = stream.read(&mut buffer).await?;
        if received == 0 {
            return Ok(());
        }
        stream.write_all(&buffer[..received]).await?;
    }
}
