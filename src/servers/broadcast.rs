//! The lab's broadcast chat room (lab 5): a list of clients, one thread per client, and every
//! chunk a client sends relayed unchanged to every other client.
//!
//! Faithful to the Python original: `recv(1024)`, relay under the list's lock (so two
//! senders' chunks never interleave inside one receiver's stream), never back to the sender,
//! and a client that leaves or whose send fails is dropped from the list.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use super::LAB_RECV_BYTES;

/// The room: each member's id and a handle to write to it.
type Members = Arc<Mutex<Vec<(u64, TcpStream)>>>;

/// Serves the room until killed.
pub fn serve(listener: TcpListener) -> io::Result<()> {
    let members: Members = Arc::default();
    for (id, accepted) in (0u64..).zip(listener.incoming()) {
        let Ok(stream) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let Ok(writer) = stream.try_clone() else { continue };
        lock(&members).push((id, writer));
        let members = Arc::clone(&members);
        thread::spawn(move || handle(id, stream, &members));
    }
    Ok(())
}

fn lock(members: &Members) -> std::sync::MutexGuard<'_, Vec<(u64, TcpStream)>> {
    members.lock().unwrap_or_else(PoisonError::into_inner)
}

fn handle(id: u64, mut stream: TcpStream, members: &Members) {
    let mut buffer = [0u8; LAB_RECV_BYTES];
    loop {
        let received = match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let mut room = lock(members);
        room.retain_mut(|(other, writer)| {
            if *other == id {
                return true;
            }
            let delivered = writer.write_all(&buffer[..received]).is_ok();
            if !delivered {
                // Wakes that member's thread, which then leaves.
                let _ = writer.shutdown(Shutdown::Both);
            }
            delivered
        });
    }
    lock(members).retain(|(other, _)| *other != id);
    let _ = stream.shutdown(Shutdown::Both);
}
