//! The messages between the parent and its worker processes, framed over pipes.
//!
//! Every frame is a tag byte, a little-endian `u32` item count, then the items. Counts
//! are bounded so that a corrupt frame is reported as an error, not an allocation of
//! gigabytes.

use std::io::{self, Read, Write};

/// The most items one frame may carry.
pub(crate) const MAX_ITEMS: u32 = 1 << 20;

const TAG_FIB: u8 = 1;
const TAG_ANSWERS: u8 = 2;
const TAG_ERROR: u8 = 3;
const TAG_ECHO: u8 = 4;
const TAG_SLEEP: u8 = 5;
const TAG_PONG: u8 = 6;
const TAG_PONG_TALLY: u8 = 7;

/// What the parent asks a worker to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// Compute `fib(n)` for each `n`.
    Fib(Vec<u32>),
    /// Answer these values back.
    Echo(Vec<u64>),
    /// Sleep this many microseconds, then answer how many passed.
    Sleep(u64),
    /// One ping of a ping-pong exchange: check its order against the pings before it
    /// (since the last tally), and answer it back as the pong.
    Pong(u64),
    /// End of a ping-pong exchange: answer `[received, out of order]` of the pings since
    /// the last tally, and start counting afresh.
    PongTally,
}

/// What a worker answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Response {
    /// Values, in order: one per requested item.
    Answers(Vec<u64>),
    /// The worker could not serve the request.
    Error(String),
}

impl Request {
    pub(crate) fn write_to(&self, writer: &mut impl Write) -> io::Result<()> {
        match self {
            Self::Fib(inputs) => {
                write_header(writer, TAG_FIB, inputs.len())?;
                for n in inputs {
                    writer.write_all(&n.to_le_bytes())?;
                }
            }
            Self::Echo(values) => {
                write_header(writer, TAG_ECHO, values.len())?;
                for value in values {
                    writer.write_all(&value.to_le_bytes())?;
                }
            }
            Self::Sleep(micros) => {
                write_header(writer, TAG_SLEEP, 1)?;
                writer.write_all(&micros.to_le_bytes())?;
            }
            Self::Pong(value) => {
                write_header(writer, TAG_PONG, 1)?;
                writer.write_all(&value.to_le_bytes())?;
            }
            Self::PongTally => write_header(writer, TAG_PONG_TALLY, 0)?,
        }
        writer.flush()
    }

    /// Reads one request; `Ok(None)` on a clean end of input before a frame starts.
    pub(crate) fn read_from(reader: &mut impl Read) -> io::Result<Option<Self>> {
        let Some((tag, count)) = read_header(reader)? else {
            return Ok(None);
        };
        let request = match tag {
            TAG_FIB => Self::Fib(read_items(reader, count, u32::from_le_bytes)?),
            TAG_ECHO => Self::Echo(read_items(reader, count, u64::from_le_bytes)?),
            TAG_SLEEP => match read_items(reader, count, u64::from_le_bytes)?.as_slice() {
                [micros] => Self::Sleep(*micros),
                _ => return Err(invalid("a sleep request carries one duration".into())),
            },
            TAG_PONG => match read_items(reader, count, u64::from_le_bytes)?.as_slice() {
                [value] => Self::Pong(*value),
                _ => return Err(invalid("a ping carries one value".into())),
            },
            TAG_PONG_TALLY if count == 0 => Self::PongTally,
            TAG_PONG_TALLY => return Err(invalid("a tally request carries nothing".into())),
            other => return Err(invalid(format!("unknown request tag {other}"))),
        };
        Ok(Some(request))
    }
}

impl Response {
    pub(crate) fn write_to(&self, writer: &mut impl Write) -> io::Result<()> {
        match self {
            Self::Answers(values) => {
                write_header(writer, TAG_ANSWERS, values.len())?;
                for value in values {
                    writer.write_all(&value.to_le_bytes())?;
                }
            }
            Self::Error(message) => {
                write_header(writer, TAG_ERROR, message.len())?;
                writer.write_all(message.as_bytes())?;
            }
        }
        writer.flush()
    }

    pub(crate) fn read_from(reader: &mut impl Read) -> io::Result<Self> {
        let (tag, count) = read_header(reader)?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "the worker closed its output")
        })?;
        match tag {
            TAG_ANSWERS => Ok(Self::Answers(read_items(
                reader,
                count,
                u64::from_le_bytes,
            )?)),
            TAG_ERROR => {
                let bytes = read_items(reader, count, u8::from_le_bytes)?;
                Ok(Self::Error(String::from_utf8_lossy(&bytes).into_owned()))
            }
            other => Err(invalid(format!("unknown response tag {other}"))),
        }
    }

    /// The single value of a one-item answer, or why there is none.
    pub(crate) fn into_single(self) -> io::Result<u64> {
        match self {
            Self::Answers(values) if values.len() == 1 => Ok(values[0]),
            Self::Answers(values) => {
                Err(invalid(format!("one value expected, got {}", values.len())))
            }
            Self::Error(message) => Err(io::Error::other(message)),
        }
    }
}

fn write_header(writer: &mut impl Write, tag: u8, count: usize) -> io::Result<()> {
    let count = u32::try_from(count)
        .ok()
        .filter(|&count| count <= MAX_ITEMS)
        .ok_or_else(|| {
            invalid(format!(
                "{count} items exceed one frame's limit of {MAX_ITEMS}"
            ))
        })?;
    writer.write_all(&[tag])?;
    writer.write_all(&count.to_le_bytes())
}

fn read_header(reader: &mut impl Read) -> io::Result<Option<(u8, u32)>> {
    let mut tag = [0u8; 1];
    loop {
        match reader.read(&mut tag) {
            Ok(0) => return Ok(None),
            Ok(_) => break,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        }
    }
    let mut count = [0u8; 4];
    reader.read_exact(&mut count)?;
    let count = u32::from_le_bytes(count);
    if count > MAX_ITEMS {
        return Err(invalid(format!(
            "frame of {count} items exceeds the limit of {MAX_ITEMS}"
        )));
    }
    Ok(Some((tag[0], count)))
}

fn read_items<const N: usize, T>(
    reader: &mut impl Read,
    count: u32,
    decode: fn([u8; N]) -> T,
) -> io::Result<Vec<T>> {
    (0..count)
        .map(|_| {
            let mut bytes = [0u8; N];
            reader.read_exact(&mut bytes)?;
            Ok(decode(bytes))
        })
        .collect()
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let requests = [
            Request::Fib(vec![1, 2, 30]),
            Request::Fib(vec![]),
            Request::Echo(vec![7, u64::MAX]),
            Request::Sleep(1500),
        ];
        let mut wire = Vec::new();
        for request in &requests {
            request.write_to(&mut wire).unwrap();
        }
        let mut reader = wire.as_slice();
        for request in requests {
            assert_eq!(Request::read_from(&mut reader).unwrap(), Some(request));
        }
        assert_eq!(Request::read_from(&mut reader).unwrap(), None);

        for response in [
            Response::Answers(vec![0, u64::MAX]),
            Response::Error("bad".into()),
        ] {
            let mut wire = Vec::new();
            response.write_to(&mut wire).unwrap();
            assert_eq!(Response::read_from(&mut wire.as_slice()).unwrap(), response);
        }
    }

    #[test]
    fn corrupt_frames_are_errors() {
        // Unknown tag.
        assert!(Request::read_from(&mut [9u8, 0, 0, 0, 0].as_slice()).is_err());
        // A count above the limit is refused before anything is allocated.
        let huge = [TAG_FIB, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            Request::read_from(&mut huge.as_slice()).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // A frame cut short.
        assert!(Request::read_from(&mut [TAG_FIB, 2, 0, 0, 0, 1, 0].as_slice()).is_err());
        // A sleep without its duration.
        assert!(Request::read_from(&mut [TAG_SLEEP, 0, 0, 0, 0].as_slice()).is_err());
        // A response that never came.
        assert!(Response::read_from(&mut [].as_slice()).is_err());
    }

    #[test]
    fn single_answers_are_unwrapped() {
        assert_eq!(Response::Answers(vec![5]).into_single().unwrap(), 5);
        assert!(Response::Answers(vec![5, 6]).into_single().is_err());
        assert!(Response::Error("no".into()).into_single().is_err());
    }
}
