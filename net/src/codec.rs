//! Frame block sync requests and responses: a 4-byte big-endian length, then borsh.
//!
//! A frame longer than its bound is an error before anything of its claimed size is
//! allocated; the body is read incrementally, so a peer that lies about the length
//! costs only what it really sends.

use super::{SyncBlock, SyncRequest, SyncResponse, limits::SYNC_REQUEST_BYTES_MAX};
use borsh::{BorshDeserialize, BorshSerialize};
use libp2p::{
    StreamProtocol,
    futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, executor::block_on, io::Cursor},
    request_response,
};
use std::io;

/// The block sync protocol name.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/nest/sync/1");

/// What a responder sends: blocks, or why it will not.
pub type WireResponse = Result<SyncResponse, String>;

/// Borsh over length-prefixed frames, bounded by `SYNC_REQUEST_BYTES_MAX` for requests and
/// `message_bytes_max` for responses.
#[derive(Debug, Clone, Copy)]
pub struct SyncCodec {
    /// Largest response frame, read or written.
    pub response_bytes_max: usize,
}

/// Reads one frame of at most `bytes_max` bytes and decodes it.
pub async fn read_frame<T, R>(io: &mut R, bytes_max: usize) -> io::Result<T>
where
    T: BorshDeserialize,
    R: AsyncRead + Unpin + Send,
{
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let length = u32::from_be_bytes(prefix) as usize;
    if length > bytes_max {
        return Err(invalid(format!("frame of {length} bytes exceeds the bound of {bytes_max}")));
    }
    let mut body = Vec::new();
    io.take(length as u64).read_to_end(&mut body).await?;
    if body.len() != length {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "frame ended early"));
    }
    borsh::from_slice(&body).map_err(|e| invalid(format!("malformed frame: {e}")))
}

/// Encodes `value` and writes it as one frame; refuses to write more than `bytes_max` bytes.
pub async fn write_frame<T, W>(io: &mut W, value: &T, bytes_max: usize) -> io::Result<()>
where
    T: BorshSerialize,
    W: AsyncWrite + Unpin + Send,
{
    let body = borsh::to_vec(value)?;
    if body.len() > bytes_max {
        return Err(invalid(format!("frame of {} bytes exceeds the bound of {bytes_max}", body.len())));
    }
    let length = u32::try_from(body.len()).map_err(|_| invalid("frame longer than 4 GiB".to_string()))?;
    io.write_all(&length.to_be_bytes()).await?;
    io.write_all(&body).await?;
    io.close().await
}

/// Decodes one block sync request frame as a peer's stream delivers it: the entry point
/// of the fuzz target `net_codec` (`fuzz/`), running the same `read_frame` as the codec.
pub fn decode_request_frame(bytes: &[u8]) -> io::Result<SyncRequest> {
    block_on(read_frame(&mut Cursor::new(bytes), SYNC_REQUEST_BYTES_MAX))
}

/// Decodes one block sync response frame of at most `response_bytes_max` bytes, like
/// [`decode_request_frame`].
pub fn decode_response_frame(bytes: &[u8], response_bytes_max: usize) -> io::Result<WireResponse> {
    block_on(read_frame(&mut Cursor::new(bytes), response_bytes_max))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = WireResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, SYNC_REQUEST_BYTES_MAX).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<WireResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.response_bytes_max).await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, request: SyncRequest) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &request, SYNC_REQUEST_BYTES_MAX).await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, response: WireResponse) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &response, self.response_bytes_max).await
    }
}

/// Encoded size of a response before its blocks: result tag, head height, block count.
pub const RESPONSE_HEADER_BYTES: usize = 1 + 8 + 4;

/// Encoded size of one block in a response: height and two length-prefixed vectors.
pub fn block_bytes(block: &SyncBlock) -> usize {
    8 + 4 + block.unit.len() + 4 + block.certificate.len() + 4 + block.finality.len()
}

/// The encoded size of a response, computed without encoding it.
#[cfg(test)]
pub fn response_bytes(response: &SyncResponse) -> usize {
    RESPONSE_HEADER_BYTES + response.blocks.iter().map(block_bytes).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8], claimed_length: u32) -> Cursor<Vec<u8>> {
        let mut bytes = claimed_length.to_be_bytes().to_vec();
        bytes.extend_from_slice(body);
        Cursor::new(bytes)
    }

    #[test]
    fn request_and_response_round_trip() {
        let request = SyncRequest { chain: "main".into(), from_height: 7, count: 3 };
        let mut out = Cursor::new(Vec::new());
        block_on(write_frame(&mut out, &request, SYNC_REQUEST_BYTES_MAX)).unwrap();
        let back: SyncRequest =
            block_on(read_frame(&mut Cursor::new(out.into_inner()), SYNC_REQUEST_BYTES_MAX)).unwrap();
        assert_eq!(back, request);

        let response = SyncResponse {
            head_height: 9,
            blocks: vec![SyncBlock { height: 7, unit: vec![1; 10], certificate: vec![2; 5], finality: vec![3; 4] }],
        };
        let wire: WireResponse = Ok(response.clone());
        assert_eq!(borsh::to_vec(&wire).unwrap().len(), response_bytes(&response));
    }

    #[test]
    fn the_public_decoders_read_one_frame_and_refuse_garbage() {
        let request = SyncRequest { chain: "main".into(), from_height: 1, count: 2 };
        let mut out = Cursor::new(Vec::new());
        block_on(write_frame(&mut out, &request, SYNC_REQUEST_BYTES_MAX)).unwrap();
        assert_eq!(decode_request_frame(out.get_ref()).unwrap(), request);
        let error = decode_response_frame(&[0, 0, 0, 1, 9], 1024).unwrap_err();
        assert!(error.to_string().contains("malformed frame"), "{error}");
    }

    #[test]
    fn a_claimed_length_over_the_bound_is_refused_before_reading() {
        let error = block_on(read_frame::<SyncRequest, _>(&mut frame(&[], u32::MAX), 4096)).unwrap_err();
        assert!(error.to_string().contains("exceeds the bound of 4096"), "{error}");
    }

    #[test]
    fn a_short_or_garbled_frame_is_an_error() {
        let error = block_on(read_frame::<SyncRequest, _>(&mut frame(&[1, 2, 3], 100), 4096)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        let error = block_on(read_frame::<SyncRequest, _>(&mut frame(&[0xff; 16], 16), 4096)).unwrap_err();
        assert!(error.to_string().contains("malformed frame"), "{error}");
    }

    #[test]
    fn writing_an_oversized_frame_is_refused() {
        let response: WireResponse = Ok(SyncResponse {
            head_height: 1,
            blocks: vec![SyncBlock { height: 1, unit: vec![0; 2000], certificate: vec![], finality: vec![] }],
        });
        let error = block_on(write_frame(&mut Cursor::new(Vec::new()), &response, 1000)).unwrap_err();
        assert!(error.to_string().contains("exceeds the bound of 1000"), "{error}");
    }
}
