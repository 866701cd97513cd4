//! An accepted connection as servers read it: plaintext, or TLS once its handshake is done.
//!
//! A TLS connection may carry the first bytes of its first request, read ahead to check that
//! the request starts in time (see [`crate::serve`]); reads return those first.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio_rustls::server::TlsStream;

use crate::Limited;

/// A connection of a [`crate::LimitedListener`]; closing it frees its slot.
pub enum Conn {
    Plain(Limited),
    Tls(Box<TlsConn>),
}

/// A connection after its TLS handshake.
pub struct TlsConn {
    stream: TlsStream<Limited>,
    /// Bytes read ahead, returned by the next reads.
    ahead: Vec<u8>,
    /// How many of `ahead` were returned.
    given: usize,
}

impl TlsConn {
    pub(crate) fn new(stream: TlsStream<Limited>) -> Self {
        Self {
            stream,
            ahead: Vec::new(),
            given: 0,
        }
    }

    /// Reads ahead until `enough` says the bytes read so far are enough (or the client closes,
    /// or `max` bytes are read); false on a read error.
    pub(crate) async fn read_ahead(&mut self, max: usize, enough: impl Fn(&[u8]) -> bool) -> bool {
        let mut buf = vec![0u8; max];
        let mut n = 0;
        while n < max {
            match self.stream.read(&mut buf[n..]).await {
                Ok(0) => break,
                Ok(k) => {
                    n += k;
                    if enough(&buf[..n]) {
                        break;
                    }
                }
                Err(_) => return false,
            }
        }
        buf.truncate(n);
        self.ahead = buf;
        true
    }

    /// The client's certificate chain, when it presented one (mTLS).
    pub fn peer_certificates(&self) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.stream.get_ref().1.peer_certificates()
    }
}

impl Conn {
    fn tcp(&self) -> &tokio::net::TcpStream {
        match self {
            Self::Plain(limited) => &limited.stream,
            Self::Tls(tls) => &tls.stream.get_ref().0.stream,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(limited) => Pin::new(limited).poll_read(cx, buf),
            Self::Tls(tls) => {
                if tls.given < tls.ahead.len() {
                    let n = buf.remaining().min(tls.ahead.len() - tls.given);
                    buf.put_slice(&tls.ahead[tls.given..tls.given + n]);
                    tls.given += n;
                    return Poll::Ready(Ok(()));
                }
                Pin::new(&mut tls.stream).poll_read(cx, buf)
            }
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(limited) => Pin::new(limited).poll_write(cx, buf),
            Self::Tls(tls) => Pin::new(&mut tls.stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(limited) => Pin::new(limited).poll_flush(cx),
            Self::Tls(tls) => Pin::new(&mut tls.stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(limited) => Pin::new(limited).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(&mut tls.stream).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(limited) => Pin::new(limited).poll_write_vectored(cx, bufs),
            Self::Tls(tls) => Pin::new(&mut tls.stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(limited) => limited.is_write_vectored(),
            Self::Tls(tls) => tls.stream.is_write_vectored(),
        }
    }
}

/// tonic's `remote_addr()` (and so the client's address in handlers) works over TLS too.
impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.tcp().connect_info()
    }
}
