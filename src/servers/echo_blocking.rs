//! The lab's blocking echo servers: iterative (lab 1) and thread-per-client (lab 3).
//!
//! Both share the per-connection loop the lab teaches: `recv(1024)`, and until it returns
//! nothing, send every byte back (`sendall`). A client that resets or misbehaves ends only its
//! own connection; the server goes on accepting, as a robust lab solution does.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use super::LAB_RECV_BYTES;

/// Serves clients strictly one after another: the next `accept` happens only when the
/// current client has disconnected, so later clients wait in the listen backlog.
pub fn serve_iterative(listener: TcpListener) -> io::Result<()> {
    loop {
        let stream = accept(&listener);
        // A broken client must not stop the server; its error ends only its session.
        let _ = echo_until_closed(stream);
    }
}

/// Serves each client on its own OS thread, as `threading.Thread(target=handle)` does.
pub fn serve_threaded(listener: TcpListener) -> io::Result<()> {
    loop {
        let stream = accept(&listener);
        thread::spawn(move || echo_until_closed(stream));
    }
}

/// Accepts the next client. Accept errors (a client that reset while queued, or running out
/// of file descriptors under a connection storm) are reported and retried, never fatal.
fn accept(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                // Deviation from the Python original, on purpose: without TCP_NODELAY, the
                // second 1024-byte send of a larger message waits for the client's delayed ACK
                // (Nagle), adding ~40 ms that would hide the iterative/concurrent contrast.
                let _ = stream.set_nodelay(true);
                return stream;
            }
            Err(err) => {
                eprintln!("accept failed: {err}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn echo_until_closed(mut stream: TcpStream) -> io::Result<()> {
    let mut buffer = [0u8; LAB_RECV_BYTES];
    loop {
        let received = match stream.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        stream.write_all(&buffer[..received])?;
    }
}
