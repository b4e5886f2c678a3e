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
/// loopback up. Root makes it directly; anyone else first enters a user namespace of their
/// own (where the kernel allows unprivileged ones; some hosts forbid them), in
/// which they may own a network namespace, keeping their own uid and gid: only the network
/// changes. Makes system calls only, allocates nothing, so it may run between fork and exec.
pub fn enter_private_network() -> io::Result<()> {
    use rustix::thread::{UnshareFlags, unshare_unsafe};
    // SAFETY: called before the process starts any other thread (see callers), so no thread
    // is left behind in the old namespaces with assumptions about them.
    match unsafe { unshare_unsafe(UnshareFlags::NEWNET) } {
        Err(rustix::io::Errno::PERM) if !rustix::process::geteuid().is_root() => {
            let uid = rustix::process::geteuid().as_raw();
            let gid = rustix::process::getegid().as_raw();
            // SAFETY: as above; a process with one thread may enter a new user namespace.
            unsafe { unshare_unsafe(UnshareFlags::NEWUSER | UnshareFlags::NEWNET) }?;
            write_proc_self("setgroups", b"deny")?;
            write_proc_self("uid_map", &identity_map(uid))?;
            write_proc_self("gid_map", &identity_map(gid))?;
        }
        entered => entered?,
    }
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

/// `ID ID 1`, a user namespace map line that keeps `id` as itself, in a stack buffer.
fn identity_map(id: u32) -> MapLine {
    let mut digits = [0u8; 10];
    let mut n = id;
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let id = &digits[start..];
    let mut line = MapLine {
        bytes: [0; 32],
        len: 0,
    };
    for part in [id, b" ", id, b" 1\n"] {
        line.bytes[line.len..line.len + part.len()].copy_from_slice(part);
        line.len += part.len();
    }
    line
}

/// A short line built without allocating.
struct MapLine {
    bytes: [u8; 32],
    len: usize,
}

impl std::ops::Deref for MapLine {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Writes `text` into `/proc/self/NAME` (a name of at most 20 bytes, as the kernel's are)
/// with one `write`, as the kernel wants its maps.
fn write_proc_self(name: &str, text: &[u8]) -> io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let prefix = b"/proc/self/";
    let mut path = [0u8; 32];
    let room = path.len() - prefix.len() - 1;
    if name.len() > room {
        // Not `io::Error::new`: nothing may allocate between fork and exec.
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    path[..prefix.len()].copy_from_slice(prefix);
    path[prefix.len()..prefix.len() + name.len()].copy_from_slice(name.as_bytes());
    let path = std::ffi::CStr::from_bytes_until_nul(&path)
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let file = rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
    rustix::io::write(&file, text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_maps_keep_the_id() {
        assert_eq!(&*identity_map(0), b"0 0 1\n");
        assert_eq!(&*identity_map(65534), b"65534 65534 1\n");
        assert_eq!(&*identity_map(u32::MAX), b"4294967295 4294967295 1\n");
    }
}
