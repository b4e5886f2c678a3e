//! The lab's turn-by-turn chat server (lab 2): one client, and an operator at the keyboard.
//!
//! Faithful to the Python original: it accepts one client, then in turns reads one message
//! (`recv(1024)`), prints it, and sends back the next non-empty line of its standard input
//! (the operator's `input()`). `exit` from the client, the client leaving, or the end of
//! standard input ends the chat and the program, with status 0.

use std::io::{self, BufRead, Read, Write};
use std::net::TcpListener;

use super::LAB_RECV_BYTES;

/// Serves one chat, then returns.
pub fn serve(listener: TcpListener) -> io::Result<()> {
    let (mut conn, address) = listener.accept()?;
    drop(listener);
    let mut out = io::stdout();
    writeln!(out, "Client connected: {address}")?;
    let mut operator = io::stdin().lock().lines();
    let mut buffer = [0u8; LAB_RECV_BYTES];
    loop {
        let received = match conn.read(&mut buffer) {
            Ok(0) => {
                writeln!(out, "Client disconnected")?;
                break;
            }
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                writeln!(out, "Client error: {err}")?;
                break;
            }
        };
        let message = String::from_utf8_lossy(&buffer[..received]);
        writeln!(out, "Client: {message}")?;
        if message.trim() == "exit" {
            writeln!(out, "Client ended the chat")?;
            break;
        }
        write!(out, "You: ")?;
        out.flush()?;
        // Like the lab's `while not reply: reply = input()`: an empty send would leave the
        // client waiting forever.
        let reply = operator
            .by_ref()
            .map_while(Result::ok)
            .find(|line| !line.is_empty());
        let Some(reply) = reply else {
            writeln!(out, "No more input, closing")?;
            break;
        };
        writeln!(out, "{reply}")?;
        conn.write_all(reply.as_bytes())?;
    }
    out.flush()
}
