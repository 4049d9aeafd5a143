//! net/socket.c: `sockfd_lookup()`, the way the socket-holding maps (SOCKMAP, SOCKHASH,
//! XSKMAP, REUSEPORT_SOCKARRAY) turn a value fd into a socket.
//!
//! The model has no sockets: its fd table holds bpf maps, directories and plain files (the
//! terminal, /dev/null), and the scenario language cannot create a socket. So the lookup
//! fails for every fd, the way the kernel fails it for a file that is not a socket, and what a
//! map does with a socket is not modelled. [`Socket`] has no values: code after a successful
//! lookup is unreachable by construction, not by an assumption about what the kernel does
//! there.

use crate::ctx::Ctx;
use crate::errno::Errno;

const FILE: &str = "net/socket.c";

/// `struct socket`, as the model has it: none exist.
pub enum Socket {}

/// `sockfd_lookup(fd, &err)`: `fget(fd)` (EBADF if nothing is open there), then
/// `sock_from_file()` (ENOTSOCK if the file is not a socket). `fd` is read as unsigned, as
/// `fget` does, so a negative fd is just one that is not open.
pub fn sockfd_lookup(ctx: &mut Ctx, fd: u32) -> Result<Socket, Errno> {
    const F: &str = "sockfd_lookup";
    let file = ctx.process.fds().get(fd);
    let Some(file) = file else {
        return Err(ctx.fail(F, FILE, "the value fd is open", Errno::EBADF, || {
            format!("fd {} is not open", fd as i32)
        }));
    };
    Err(ctx.fail(
        F,
        FILE,
        "sock_from_file(): the value fd is a socket",
        Errno::ENOTSOCK,
        || {
            format!(
                "fd {} is {}; the model has no sockets",
                fd as i32,
                file.describe()
            )
        },
    ))
}
