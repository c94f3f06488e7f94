//! The buffers of one recvmmsg/sendmmsg batch. libc is used for these two calls only:
//! neither std nor socket2 has them, and nix's wrappers allocate per call; socket2 turns
//! the kernel's source addresses into `SocketAddr`s.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use socket2::{SockAddr, SockAddrStorage};

/// Datagrams received or sent per system call.
pub(super) const BATCH: usize = 32;
/// Largest query accepted; anything longer is truncated by the kernel and dropped.
const MAX_QUERY: usize = 4096;

/// Buffers for one recvmmsg call and the sendmmsg of its answers, reused for every batch.
/// The send headers point at the received source addresses: no conversion per query.
pub(super) struct Batch {
    pub(super) buffers: Vec<[u8; MAX_QUERY]>,
    pub(super) addrs: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    pub(super) headers: Vec<libc::mmsghdr>,
    pub(super) responses: Vec<Vec<u8>>,
    /// Indices of the datagrams answered in this batch, the first `answered_count`.
    pub(super) answered: [usize; BATCH],
    pub(super) answered_count: usize,
    send_iovecs: Vec<libc::iovec>,
    send_headers: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in the iovecs and headers point into this struct's own heap
// buffers, which never move while it lives; a Batch is used by one thread at a time.
unsafe impl Send for Batch {}

impl Batch {
    pub(super) fn new() -> Batch {
        // SAFETY: sockaddr_storage, iovec and mmsghdr are plain data; all-zero is valid.
        let (zero_addr, zero_iovec, zero_header): (
            libc::sockaddr_storage,
            libc::iovec,
            libc::mmsghdr,
        ) = unsafe { (std::mem::zeroed(), std::mem::zeroed(), std::mem::zeroed()) };
        let mut batch = Batch {
            buffers: vec![[0u8; MAX_QUERY]; BATCH],
            addrs: vec![zero_addr; BATCH],
            iovecs: vec![zero_iovec; BATCH],
            headers: vec![zero_header; BATCH],
            responses: (0..BATCH).map(|_| Vec::with_capacity(512)).collect(),
            answered: [0; BATCH],
            answered_count: 0,
            send_iovecs: vec![zero_iovec; BATCH],
            send_headers: vec![zero_header; BATCH],
        };
        for i in 0..BATCH {
            batch.iovecs[i] = libc::iovec {
                iov_base: batch.buffers[i].as_mut_ptr().cast(),
                iov_len: MAX_QUERY,
            };
            let header = &mut batch.headers[i].msg_hdr;
            header.msg_name = (&mut batch.addrs[i] as *mut libc::sockaddr_storage).cast();
            header.msg_iov = &mut batch.iovecs[i];
            header.msg_iovlen = 1;
            let send = &mut batch.send_headers[i].msg_hdr;
            send.msg_iov = &mut batch.send_iovecs[i];
            send.msg_iovlen = 1;
        }
        batch
    }

    /// Blocks (up to the socket's read timeout) for at least one datagram.
    pub(super) fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        for header in &mut self.headers {
            header.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            header.msg_hdr.msg_flags = 0;
            header.msg_len = 0;
        }
        // SAFETY: every header points at live buffers of the stated sizes.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Sends the responses of the first `count` answered datagrams to their sources.
    pub(super) fn send(&mut self, socket: &UdpSocket, count: usize) -> io::Result<()> {
        for k in 0..count {
            let i = self.answered[k];
            self.send_iovecs[k] = libc::iovec {
                iov_base: self.responses[i].as_ptr() as *mut libc::c_void,
                iov_len: self.responses[i].len(),
            };
            let header = &mut self.send_headers[k].msg_hdr;
            header.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            header.msg_namelen = self.headers[i].msg_hdr.msg_namelen;
        }
        let mut sent = 0;
        while sent < count {
            // SAFETY: the headers point at `addrs`, `send_iovecs` and `responses`, all
            // alive and unchanged during the call.
            let n = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    self.send_headers[sent..].as_mut_ptr(),
                    (count - sent) as u32,
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            sent += n as usize;
        }
        Ok(())
    }
}

/// A source address as the kernel wrote it (`len`: its `msg_namelen`).
pub(super) fn source(address: &libc::sockaddr_storage, len: u32) -> Option<SocketAddr> {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: both are the platform's sockaddr_storage (socket2's is repr(transparent)), and
    // `msg_namelen` is the length the kernel wrote into it.
    let address = unsafe {
        *storage.view_as::<libc::sockaddr_storage>() = *address;
        SockAddr::new(storage, len)
    };
    address.as_socket()
}
