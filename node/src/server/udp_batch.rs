//! Batched UDP I/O for Linux: `recvmmsg(2)` and `sendmmsg(2)`.
//!
//! Under load several queries wait in the socket buffer; one `recvmmsg`
//! takes up to [`BATCH`] of them and one `sendmmsg` sends all their answers,
//! instead of two system calls per query. With `MSG_WAITFORONE` the receive
//! returns as soon as one datagram is there, so batching never adds latency.
//!
//! This is the second audited `unsafe` module of the crate (the first maps
//! snapshots): the kernel writes into buffers we describe with raw
//! pointers. All of them live in boxed slices owned by the batch, allocated
//! once per worker thread and never moved or resized afterwards, so the
//! pointers stay valid for as long as the batch exists.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::RawFd;

/// Datagrams per system call.
pub const BATCH: usize = 32;

/// Largest query read; longer datagrams are dropped (no real DNS query
/// over UDP comes close: questions are at most ~300 bytes with EDNS).
pub const MAX_QUERY: usize = 4096;

/// Received datagrams: their bytes and where they came from.
pub struct RecvBatch {
    bufs: Box<[u8]>,
    addrs: Box<[libc::sockaddr_storage]>,
    /// Pointed to by `hdrs` during a call.
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    count: usize,
}

impl RecvBatch {
    /// Buffers for [`BATCH`] datagrams. The kernel-facing pointers are
    /// filled in by [`Self::recv`] right before each call.
    pub fn new() -> Self {
        RecvBatch {
            bufs: vec![0u8; BATCH * MAX_QUERY].into_boxed_slice(),
            addrs: zeroed_slice(),
            iovs: zeroed_slice(),
            hdrs: zeroed_slice(),
            count: 0,
        }
    }

    /// Blocks until at least one datagram arrives (or the socket is shut
    /// down) and takes up to [`BATCH`]. Returns how many.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        // Pointers are taken afresh from `&mut self` right before the call,
        // so no write through the owning boxes can invalidate them first.
        for i in 0..BATCH {
            self.iovs[i].iov_base = self.bufs[i * MAX_QUERY..].as_mut_ptr().cast();
            self.iovs[i].iov_len = MAX_QUERY;
            let h = &mut self.hdrs[i];
            h.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
            h.msg_hdr.msg_iov = &mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        // SAFETY: `hdrs` holds BATCH headers whose name and iovec pointers
        // point into `addrs`, `iovs` and `bufs`, all owned by `self`, alive
        // and unaliased for the call; the lengths given match the buffers.
        let n = unsafe {
            libc::recvmmsg(fd, self.hdrs.as_mut_ptr(), BATCH as u32, libc::MSG_WAITFORONE, std::ptr::null_mut())
        };
        if n < 0 {
            self.count = 0;
            return Err(io::Error::last_os_error());
        }
        self.count = n as usize;
        Ok(self.count)
    }

    /// Datagram `i` of the last receive, or `None` if it was cut short
    /// (longer than [`MAX_QUERY`]).
    pub fn datagram(&self, i: usize) -> Option<&[u8]> {
        let h = self.hdrs.get(i).filter(|_| i < self.count)?;
        if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return None;
        }
        let len = (h.msg_len as usize).min(MAX_QUERY);
        self.bufs.get(i * MAX_QUERY..i * MAX_QUERY + len)
    }

    /// The address datagram `i` came from (IPv4 or IPv6), for access
    /// lists and rate limits.
    pub fn source_ip(&self, i: usize) -> Option<std::net::IpAddr> {
        let addr = self.addrs.get(i).filter(|_| i < self.count)?;
        match i32::from(addr.ss_family) {
            libc::AF_INET => {
                // SAFETY: the kernel wrote a sockaddr_in here (family
                // AF_INET); sockaddr_storage is larger and suitably aligned
                // for every sockaddr type, so the read is in bounds.
                let v4 = unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                Some(std::net::Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)).into())
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for a sockaddr_in6 (family AF_INET6).
                let v6 = unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                Some(std::net::Ipv6Addr::from(v6.sin6_addr.s6_addr).into())
            }
            _ => None,
        }
    }

    /// Where datagram `i` came from, as the kernel wrote it.
    fn source(&self, i: usize) -> (&libc::sockaddr_storage, u32) {
        (&self.addrs[i], self.hdrs[i].msg_hdr.msg_namelen)
    }

    /// Where datagram `i` came from, as a socket address (to answer it
    /// from another thread: an RFC 2136 UPDATE goes to the update writer).
    pub fn peer(&self, i: usize) -> Option<std::net::SocketAddr> {
        use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
        if i >= self.count {
            return None;
        }
        let (storage, len) = self.source(i);
        match i32::from(storage.ss_family) {
            libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
                // SAFETY: the kernel wrote a sockaddr_in (family AF_INET, length
                // checked) into this sockaddr_storage, which is larger and
                // suitably aligned for every sockaddr type.
                let a = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(SocketAddrV4::new(ip, u16::from_be(a.sin_port)).into())
            }
            libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for a sockaddr_in6 (family AF_INET6).
                let a = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                Some(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), a.sin6_flowinfo, a.sin6_scope_id).into())
            }
            _ => None,
        }
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

/// Answers to send, each to the source of the datagram it answers.
pub struct SendBatch {
    bufs: Box<[u8]>,
    buf_len: usize,
    addrs: Box<[libc::sockaddr_storage]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    count: usize,
}

impl SendBatch {
    /// Buffers for [`BATCH`] answers of up to `max_len` bytes. The
    /// kernel-facing pointers are filled in by [`Self::send`].
    pub fn new(max_len: usize) -> Self {
        SendBatch {
            bufs: vec![0u8; BATCH * max_len].into_boxed_slice(),
            buf_len: max_len,
            addrs: zeroed_slice(),
            iovs: zeroed_slice(),
            hdrs: zeroed_slice(),
            count: 0,
        }
    }

    /// The buffer for the next answer.
    pub fn next_buf(&mut self) -> &mut [u8] {
        let at = self.count * self.buf_len;
        &mut self.bufs[at..at + self.buf_len]
    }

    /// Queues the `len` bytes written to [`Self::next_buf`] as the answer
    /// to datagram `i` of `from`.
    pub fn push(&mut self, from: &RecvBatch, i: usize, len: usize) {
        let j = self.count;
        let (addr, namelen) = from.source(i);
        self.addrs[j] = *addr;
        self.iovs[j].iov_len = len.min(self.buf_len);
        self.hdrs[j].msg_hdr.msg_namelen = namelen;
        self.count += 1;
    }

    /// Sends every queued answer. A datagram the kernel refuses (say, an
    /// ICMP error surfacing) is skipped; the others still go. Returns how
    /// many were sent.
    pub fn send(&mut self, fd: RawFd) -> usize {
        // Fresh pointers, as in `RecvBatch::recv`.
        for j in 0..self.count {
            self.iovs[j].iov_base = self.bufs[j * self.buf_len..].as_mut_ptr().cast();
            let h = &mut self.hdrs[j];
            h.msg_hdr.msg_name = (&mut self.addrs[j] as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_iov = &mut self.iovs[j];
            h.msg_hdr.msg_iovlen = 1;
        }
        let mut sent = 0;
        let mut at = 0;
        while at < self.count {
            // SAFETY: headers `at..count` point into `addrs`, `iovs` and
            // `bufs` owned by `self`; each iov length is within its buffer.
            let n = unsafe { libc::sendmmsg(fd, self.hdrs[at..].as_mut_ptr(), (self.count - at) as u32, 0) };
            if n <= 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::debug!(error = %e, "udp send failed; dropping one answer");
                at += 1;
            } else {
                sent += n as usize;
                at += n as usize;
            }
        }
        self.count = 0;
        sent
    }
}

/// [`BATCH`] all-zero C structs.
fn zeroed_slice<T>() -> Box<[T]> {
    // SAFETY: only used for sockaddr_storage, iovec and mmsghdr, plain C
    // structs for which all-zero bytes are a valid (empty) value.
    (0..BATCH).map(|_| unsafe { zeroed() }).collect()
}
