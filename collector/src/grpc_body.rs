//! An OTLP/gRPC request body charged to the memory budget as it arrives, before tonic buffers
//! it.
//!
//! Uncompressed calls pass through frame by frame, each charged first: twice the bytes read so
//! far, since tonic's buffer grows by doubling. Gzip calls are inflated here rather than by
//! tonic, so that the inflated bytes are charged as they grow ([`crate::body::decode_content`])
//! and a small message that inflates to a large one is refused before it takes the memory: each
//! length-prefixed message is gathered as it arrives (charged likewise; a length prefix claiming
//! more than `--max-message-size` is refused at once), inflated (charged), and handed to tonic as an
//! uncompressed message (its copy charged too); the call's `grpc-encoding` is removed so that
//! tonic does not inflate again. When a charge cannot grow, nothing of the call stays charged;
//! the rest of the body is read and dropped, and the body then ends with the refusal
//! (RESOURCE_EXHAUSTED with RetryInfo while the budget is busy), which tonic answers the call
//! with. Ending the body at once instead would reset the stream under a client still sending,
//! which it sees as a transport error rather than a refusal to retry.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body::Frame;
use tonic::Status;

use crate::admission::Charge;
use crate::{Error, Result};

/// The gRPC message prefix: a compressed flag and a big-endian length.
const PREFIX: usize = 5;

/// The charge of one call's body, shared by the body being read and the service that exports it.
#[derive(Clone)]
pub struct BodyCharge(Arc<Mutex<Option<Charge>>>);

impl BodyCharge {
    pub fn new(charge: Charge) -> Self {
        Self(Arc::new(Mutex::new(Some(charge))))
    }

    /// The charge, once the body is read (none if the body was refused).
    pub fn take(&self) -> Option<Charge> {
        self.0.lock().expect("body charge").take()
    }

    /// Grows the charge to `bytes`; a refusal gives the whole charge back.
    fn grow_to(&self, bytes: usize) -> Result<()> {
        let mut held = self.0.lock().expect("body charge");
        let Some(charge) = held.as_mut() else {
            return Ok(());
        };
        charge
            .grow_to(bytes, "the request body")
            .inspect_err(|_| drop(held.take()))
    }

    /// Inflates one gzip message against the charge.
    fn inflate(&self, message: Bytes, limit: usize) -> Result<Bytes> {
        let mut held = self.0.lock().expect("body charge");
        let Some(charge) = held.as_mut() else {
            return Err(Error::Internal("inflating a refused body".into()));
        };
        crate::body::decode_content(Some("gzip"), message, limit, charge)
            .inspect_err(|_| drop(held.take()))
    }
}

/// Removes the call's `grpc-encoding` when it is gzip (this body inflates instead of tonic);
/// returns whether it was.
pub fn take_gzip(headers: &mut http::HeaderMap) -> bool {
    let gzip = headers
        .get("grpc-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    if gzip {
        headers.remove("grpc-encoding");
    }
    gzip
}

pub struct ChargedBody<B> {
    inner: Pin<Box<B>>,
    charge: BodyCharge,
    /// Bytes read so far (uncompressed calls).
    read: usize,
    /// Gzip calls: the message being gathered, and the largest message accepted.
    gzip: Option<(BytesMut, usize)>,
    /// Bytes held by messages already handed to tonic (gzip calls).
    handed: usize,
    /// Why the call was refused; the rest of its body is dropped as it comes.
    refused: Option<Error>,
}

impl<B> ChargedBody<B> {
    pub fn new(inner: B, charge: BodyCharge, gzip: bool, max_message_bytes: usize) -> Self {
        Self {
            inner: Box::pin(inner),
            charge,
            read: 0,
            gzip: gzip.then(|| (BytesMut::new(), max_message_bytes)),
            handed: 0,
            refused: None,
        }
    }

    /// Gathers `data` into the gzip message; once it is whole, inflates it and returns it as
    /// an uncompressed message.
    fn gather(&mut self, mut data: Bytes) -> Result<Option<Bytes>> {
        let (message, limit) = self.gzip.as_mut().expect("a gzip call");
        let limit = *limit;
        // The gathered message grows by doubling as data arrives, never by what its prefix
        // claims: a prefix alone takes no memory.
        let received = message.len() + data.len();
        self.charge.grow_to(self.handed + 2 * received)?;
        let need = |m: &BytesMut| {
            (m.len() >= PREFIX)
                .then(|| PREFIX + u32::from_be_bytes([m[1], m[2], m[3], m[4]]) as usize)
        };
        while message.len() < PREFIX && data.has_remaining() {
            message.put_u8(data.get_u8());
        }
        if let Some(total) = need(message) {
            if total - PREFIX > limit {
                return Err(Error::TooLarge(format!(
                    "a message of {} bytes is larger than the limit of {limit} bytes",
                    total - PREFIX
                )));
            }
        }
        message.put(data);
        match need(message) {
            Some(total) if message.len() >= total => {
                if message.len() > total {
                    return Err(Error::BadRequest(
                        "an export call carries one message; this one carries more".into(),
                    ));
                }
                let whole = std::mem::take(message).freeze();
                let inflated = if whole[0] == 1 {
                    self.charge.inflate(whole.slice(PREFIX..), limit)?
                } else {
                    whole.slice(PREFIX..)
                };
                let mut out = BytesMut::with_capacity(PREFIX + inflated.len());
                out.put_u8(0);
                out.put_u32(inflated.len() as u32);
                out.put(inflated);
                // The message handed over, and tonic's copy of it.
                self.handed = 2 * out.len();
                self.charge.grow_to(self.handed)?;
                Ok(Some(out.freeze()))
            }
            _ => Ok(None),
        }
    }
}

impl<B> http_body::Body for ChargedBody<B>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Self::Error>>> {
        loop {
            let frame = match ready!(self.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                None => {
                    return Poll::Ready(
                        self.refused
                            .take()
                            .map(|refused| Err(Box::new(Status::from(refused)) as _)),
                    )
                }
            };
            if self.refused.is_some() {
                continue;
            }
            let mut data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    let trailers = frame.into_trailers().ok();
                    return Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))));
                }
            };
            let data = data.copy_to_bytes(data.remaining());
            let result = if self.gzip.is_some() {
                self.gather(data)
            } else {
                self.read += data.len();
                let want = self.read.saturating_mul(2);
                self.charge.grow_to(want).map(|()| Some(data))
            };
            match result {
                Ok(Some(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(None) => continue,
                Err(refused) => {
                    crate::metrics::refused(refused.reason());
                    // Nothing of a refused call stays charged while the rest of it is dropped.
                    drop(self.charge.take());
                    self.gzip = None;
                    self.refused = Some(refused);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.refused.is_none() && self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::io::Write;

    use super::*;
    use crate::admission::Budget;

    /// A request body of the given frames.
    struct Frames(VecDeque<Bytes>);

    impl http_body::Body for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<std::result::Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    /// Every frame the charged body yields, or the error it ends with.
    fn read_all(body: &mut ChargedBody<Frames>) -> std::result::Result<Vec<Bytes>, String> {
        let mut out = Vec::new();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        loop {
            match http_body::Body::poll_frame(Pin::new(&mut *body), &mut cx) {
                Poll::Ready(Some(Ok(frame))) => out.push(frame.into_data().unwrap()),
                Poll::Ready(Some(Err(e))) => return Err(e.to_string()),
                Poll::Ready(None) => return Ok(out),
                Poll::Pending => unreachable!("frames are ready"),
            }
        }
    }

    fn gzip_message(content: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(content).unwrap();
        let gz = enc.finish().unwrap();
        let mut m = vec![1];
        m.extend((gz.len() as u32).to_be_bytes());
        m.extend(gz);
        m
    }

    fn charged(budget: &Budget, frames: Vec<Vec<u8>>) -> (ChargedBody<Frames>, BodyCharge) {
        let charge = BodyCharge::new(budget.charge());
        let body = Frames(frames.into_iter().map(Bytes::from).collect());
        (
            ChargedBody::new(body, charge.clone(), true, 16 << 20),
            charge,
        )
    }

    #[test]
    fn a_gzip_message_is_inflated_against_the_charge() {
        let budget = Budget::new(64 << 20);
        let content = vec![7u8; 1 << 20];
        let message = gzip_message(&content);
        let (head, tail) = message.split_at(3);
        let (mut body, charge) = charged(&budget, vec![head.to_vec(), tail.to_vec()]);
        let frames = read_all(&mut body).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0][0], 0, "handed over uncompressed");
        assert_eq!(&frames[0][1..5], &((1u32 << 20).to_be_bytes()));
        assert_eq!(&frames[0][5..], &content[..]);
        // The message handed over and tonic's copy of it.
        assert!(charge.take().unwrap().bytes() >= 2 << 20);
    }

    #[test]
    fn a_length_prefix_takes_no_memory_and_an_inflating_bomb_is_refused() {
        let budget = Budget::new(512 << 10);
        // A prefix claiming 16 MiB, and nothing after it.
        let (mut body, charge) = charged(&budget, vec![vec![1, 0, 0xff, 0xff, 0xf0, 1, 2, 3]]);
        assert_eq!(read_all(&mut body).unwrap(), Vec::<Bytes>::new());
        assert!(budget.used_bytes() <= 1024, "{}", budget.used_bytes());
        let gathered = body.gzip.as_ref().map(|(m, _)| m.capacity()).unwrap();
        assert!(gathered < 1024, "{gathered} bytes set aside for a claim");
        drop((body, charge));
        // Past the limit: refused at once, before any of it arrives.
        let (mut body, _) = charged(&budget, vec![vec![1, 0x01, 0, 0, 1], vec![0; 64]]);
        let refused = read_all(&mut body).unwrap_err();
        assert!(refused.contains("larger than the limit"), "{refused}");
        // 1 MiB of zeros in a few KB of gzip, against a 512 KiB budget: refused while inflating,
        // and nothing stays charged.
        let (mut body, charge) = charged(&budget, vec![gzip_message(&vec![0u8; 1 << 20])]);
        let refused = read_all(&mut body).unwrap_err();
        assert!(
            refused.contains("more than the collector's whole buffer"),
            "{refused}"
        );
        assert!(charge.take().is_none());
        assert_eq!(budget.used_bytes(), 0);
    }
}
