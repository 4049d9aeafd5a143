//! Error numbers as the kernel returns them.
//!
//! `Errno` is a newtype over the number, not an enum, because the bpf syscall can hand user
//! space numbers that no libc names: `ENOTSUPP` (524) is a kernel-internal code that leaks
//! out of bpf(2), and is not `EOPNOTSUPP` (95). The numbers are the generic ones that x86_64
//! and riscv64 share (include/uapi/asm-generic/errno-base.h, errno.h, include/linux/errno.h).

use std::fmt;

/// A positive kernel error number. The syscall returns `-errno`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Errno(pub i32);

macro_rules! errnos {
    ($($name:ident = $num:expr, $text:expr;)*) => {
        impl Errno {
            $(#[doc = $text] pub const $name: Errno = Errno($num);)*

            /// Every named errno the model knows, in number order.
            pub const ALL: &'static [Errno] = &[$(Errno::$name),*];

            /// The symbolic name (`"EEXIST"`), if the number has one.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($num => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// A short description, as strerror() would give it (ENOTSUPP has its own).
            pub fn description(self) -> &'static str {
                match self.0 {
                    $($num => $text,)*
                    _ => "unknown error",
                }
            }

            /// Looks a name up (`"EEXIST"` -> `Errno(17)`).
            pub fn from_name(name: &str) -> Option<Errno> {
                match name {
                    $(stringify!($name) => Some(Errno::$name),)*
                    _ => None,
                }
            }
        }
    };
}

errnos! {
    EPERM = 1, "Operation not permitted";
    ENOENT = 2, "No such file or directory";
    ESRCH = 3, "No such process";
    EINTR = 4, "Interrupted system call";
    EIO = 5, "Input/output error";
    ENXIO = 6, "No such device or address";
    E2BIG = 7, "Argument list too long";
    EBADF = 9, "Bad file descriptor";
    EAGAIN = 11, "Resource temporarily unavailable";
    ENOMEM = 12, "Cannot allocate memory";
    EACCES = 13, "Permission denied";
    EFAULT = 14, "Bad address";
    EBUSY = 16, "Device or resource busy";
    EEXIST = 17, "File exists";
    EXDEV = 18, "Invalid cross-device link";
    ENODEV = 19, "No such device";
    ENOTDIR = 20, "Not a directory";
    EISDIR = 21, "Is a directory";
    EINVAL = 22, "Invalid argument";
    ENFILE = 23, "Too many open files in system";
    EMFILE = 24, "Too many open files";
    ENOTTY = 25, "Inappropriate ioctl for device";
    ENOSPC = 28, "No space left on device";
    EROFS = 30, "Read-only file system";
    ERANGE = 34, "Numerical result out of range";
    ENAMETOOLONG = 36, "File name too long";
    ENOSYS = 38, "Function not implemented";
    ELOOP = 40, "Too many levels of symbolic links";
    EOVERFLOW = 75, "Value too large for defined data type";
    EBADFD = 77, "File descriptor in bad state";
    ENOTSOCK = 88, "Socket operation on non-socket";
    EOPNOTSUPP = 95, "Operation not supported";
    ENOTSUPP = 524, "Operation is not supported (kernel-internal ENOTSUPP)";
}

impl Errno {
    /// The name if there is one, else `errno N`.
    pub fn symbol(self) -> String {
        match self.name() {
            Some(n) => n.to_string(),
            None => format!("errno {}", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "errno {}", self.0),
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self, self.0)
    }
}

impl std::error::Error for Errno {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enotsupp_is_524_and_not_eopnotsupp() {
        assert_eq!(Errno::ENOTSUPP.0, 524);
        assert_eq!(Errno::EOPNOTSUPP.0, 95);
        assert_ne!(Errno::ENOTSUPP, Errno::EOPNOTSUPP);
        assert_eq!(Errno::ENOTSUPP.name(), Some("ENOTSUPP"));
    }

    #[test]
    fn unnamed_numbers_still_print() {
        assert_eq!(Errno(600).to_string(), "errno 600");
        assert_eq!(Errno::from_name("EBADFD"), Some(Errno(77)));
    }
}
