//! A private network namespace for a run: only a loopback interface, nobody else's ports.
//!
//! A graded submission often hard-codes port 6000; in its own namespace every submission can
//! bind 6000 at once, and nothing but loopback is reachable from it. The process that calls
//! [`enter_private_network`] (a child labrun, before it starts any thread or server) moves
//! into a fresh namespace and brings its `lo` up; everything it starts inherits it.

use std::io;

use rustix::ioctl::{Setter, ioctl};

/// `SIOCSIFFLAGS`: set an interface's flags.
const SIOCSIFFLAGS: rustix::ioctl::Opcode = 0x8914;
const IFF_UP: i16 = 0x1;
const IFF_RUNNING: i16 = 0x40;

/// `struct ifreq` with the flags member of its union.
#[repr(C)]
struct InterfaceFlags {
    name: [u8; 16],
    flags: i16,
    _rest: [u8; 22],
}

/// Moves the calling thread (and so what it starts later) into a new network namespace with
/// loopback up. Needs root or an unprivileged user namespace.
pub fn enter_private_network() -> io::Result<()> {
    // SAFETY: called before the process starts any other thread (see callers), so no thread
    // is left behind in the old namespace with assumptions about it.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }?;
    let socket = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )?;
    let mut name = [0u8; 16];
    name[..2].copy_from_slice(b"lo");
    let request = InterfaceFlags {
        name,
        flags: IFF_UP | IFF_RUNNING,
        _rest: [0; 22],
    };
    // SAFETY: SIOCSIFFLAGS reads a `struct ifreq`, which `InterfaceFlags` lays out exactly
    // (16-byte name, then the flags in the union).
    unsafe { ioctl(&socket, Setter::<SIOCSIFFLAGS, InterfaceFlags>::new(request)) }?;
    Ok(())
}
