//! The orchestrator's commands and the agent's answers, as bytes (format:
//! docs/orchestrator-commands.md). Parsing never panics and borrows the request's bytes.

use core::fmt;

use microservices::ServiceKind;

/// Format version in byte 0 of every command and answer.
pub const VERSION: u8 = 1;
/// Length of the command header: version, opcode, request id.
pub const HEADER_LEN: usize = 4;
/// Most snapshot bytes in one answer (fits a 1500-byte IP packet with room to spare).
pub const CHUNK: usize = 1024;

/// Operation codes.
pub mod op {
    /// Deploy a service instance and route a UDP port to it.
    pub const DEPLOY: u8 = 1;
    /// Stop a service: its requests are parked from now on.
    pub const STOP: u8 = 2;
    /// Read a chunk of a stopped service's state.
    pub const SNAPSHOT: u8 = 3;
    /// Write a chunk of state into a service.
    pub const RESTORE: u8 = 4;
    /// Route a UDP port to a local service, to the host, or nowhere.
    pub const SET_ROUTE: u8 = 5;
    /// Remove a service and free its resources.
    pub const REMOVE: u8 = 6;
}

/// Where [`Command::SetRoute`] sends a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteTarget {
    /// Close the port.
    None,
    /// To the local service with this id.
    Service(u16),
    /// Over the host path.
    Host,
}

/// One command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// Build an instance of `kind` with `config`, as service `service`, serving `port`.
    Deploy {
        /// New service id.
        service: u16,
        /// What to build.
        kind: ServiceKind,
        /// UDP port of the NIC IP to route to it.
        port: u16,
        /// Kind-specific configuration bytes.
        config: &'a [u8],
    },
    /// Stop `service`: park its requests until its port is routed again.
    Stop {
        /// Service id.
        service: u16,
    },
    /// The state of `service` from byte `offset`; offset 0 takes a fresh snapshot.
    Snapshot {
        /// Service id.
        service: u16,
        /// Where the chunk starts.
        offset: u32,
    },
    /// Bytes `offset..offset + chunk.len()` of a `total`-byte state for `service`; the last
    /// chunk restores it.
    Restore {
        /// Service id.
        service: u16,
        /// Length of the whole state.
        total: u32,
        /// Where this chunk goes.
        offset: u32,
        /// The bytes.
        chunk: &'a [u8],
    },
    /// Route UDP `port` to `target`; requests parked for it are handed on.
    SetRoute {
        /// UDP port of the NIC IP.
        port: u16,
        /// Where to.
        target: RouteTarget,
    },
    /// Remove `service`.
    Remove {
        /// Service id.
        service: u16,
    },
}

/// The status byte of an answer (0 is success).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// Shorter than its fixed part.
    Truncated,
    /// Another format version.
    BadVersion,
    /// Unknown opcode.
    BadOpcode,
    /// A field out of range (unknown kind, route target, chunk past the total).
    BadField,
    /// No service with that id.
    UnknownService,
    /// A service with that id exists already.
    DuplicateService,
    /// No free service slot or route.
    Full,
    /// This node cannot build that kind of service.
    Unsupported,
    /// The snapshot could not be restored.
    BadState,
    /// A snapshot or restore out of sequence (offset not where the transfer stands).
    OutOfSequence,
    /// The node has not the memory the service (or the state being restored) needs.
    NoMemory,
}

impl CommandError {
    /// The status byte.
    pub const fn code(self) -> u8 {
        match self {
            CommandError::Truncated => 1,
            CommandError::BadVersion => 2,
            CommandError::BadOpcode => 3,
            CommandError::BadField => 4,
            CommandError::UnknownService => 5,
            CommandError::DuplicateService => 6,
            CommandError::Full => 7,
            CommandError::Unsupported => 8,
            CommandError::BadState => 9,
            CommandError::OutOfSequence => 10,
            CommandError::NoMemory => 11,
        }
    }

    /// The error a status byte stands for.
    pub fn from_code(code: u8) -> Option<Self> {
        [
            CommandError::Truncated,
            CommandError::BadVersion,
            CommandError::BadOpcode,
            CommandError::BadField,
            CommandError::UnknownService,
            CommandError::DuplicateService,
            CommandError::Full,
            CommandError::Unsupported,
            CommandError::BadState,
            CommandError::OutOfSequence,
            CommandError::NoMemory,
        ]
        .into_iter()
        .find(|e| e.code() == code)
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CommandError::Truncated => "command truncated",
            CommandError::BadVersion => "unknown command version",
            CommandError::BadOpcode => "unknown opcode",
            CommandError::BadField => "field out of range",
            CommandError::UnknownService => "no such service",
            CommandError::DuplicateService => "service id in use",
            CommandError::Full => "no free slot or route",
            CommandError::Unsupported => "service kind not supported here",
            CommandError::BadState => "state could not be restored",
            CommandError::OutOfSequence => "chunk out of sequence",
            CommandError::NoMemory => "not enough memory on the node",
        })
    }
}

/// A little-endian reader over a byte string that fails instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CommandError> {
        if self.0.len() < n {
            return Err(CommandError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, CommandError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, CommandError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, CommandError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.0)
    }
}

/// Parses a command; returns its request id and the command. The request id is returned even
/// when the body is bad, so the answer can carry it.
pub fn parse(bytes: &[u8]) -> (u16, Result<Command<'_>, CommandError>) {
    let mut reader = Reader(bytes);
    let header = (|| Ok::<_, CommandError>((reader.u8()?, reader.u8()?, reader.u16()?)))();
    let (version, opcode, request) = match header {
        Ok(header) => header,
        Err(error) => return (0, Err(error)),
    };
    if version != VERSION {
        return (request, Err(CommandError::BadVersion));
    }
    (request, parse_body(opcode, &mut reader))
}

fn parse_body<'a>(opcode: u8, r: &mut Reader<'a>) -> Result<Command<'a>, CommandError> {
    Ok(match opcode {
        op::DEPLOY => Command::Deploy {
            service: r.u16()?,
            kind: *ServiceKind::ALL
                .get(usize::from(r.u8()?))
                .ok_or(CommandError::BadField)?,
            port: r.u16()?,
            config: r.rest(),
        },
        op::STOP => Command::Stop { service: r.u16()? },
        op::SNAPSHOT => Command::Snapshot {
            service: r.u16()?,
            offset: r.u32()?,
        },
        op::RESTORE => {
            let (service, total, offset) = (r.u16()?, r.u32()?, r.u32()?);
            let chunk = r.rest();
            let end = u64::from(offset) + chunk.len() as u64;
            if end > u64::from(total) {
                return Err(CommandError::BadField);
            }
            Command::Restore {
                service,
                total,
                offset,
                chunk,
            }
        }
        op::SET_ROUTE => {
            let port = r.u16()?;
            let target = match r.u8()? {
                0 => RouteTarget::None,
                1 => RouteTarget::Service(r.u16()?),
                2 => RouteTarget::Host,
                _ => return Err(CommandError::BadField),
            };
            Command::SetRoute { port, target }
        }
        op::REMOVE => Command::Remove { service: r.u16()? },
        _ => return Err(CommandError::BadOpcode),
    })
}

/// The index of `kind` in the catalogue: its byte in a deploy command.
pub fn kind_code(kind: ServiceKind) -> u8 {
    ServiceKind::ALL
        .iter()
        .position(|&k| k == kind)
        .unwrap_or(0) as u8
}

/// Writes `command` with `request` id into `out`; returns its length, or `None` when `out` is
/// too small. The orchestrator's encoder, kept here beside the parser it must match.
pub fn encode(request: u16, command: &Command<'_>, out: &mut [u8]) -> Option<usize> {
    let mut w = Writer { out, len: 0 };
    w.put(&[VERSION, command.opcode()])?;
    w.put(&request.to_le_bytes())?;
    match *command {
        Command::Deploy {
            service,
            kind,
            port,
            config,
        } => {
            w.put(&service.to_le_bytes())?;
            w.put(&[kind_code(kind)])?;
            w.put(&port.to_le_bytes())?;
            w.put(config)?;
        }
        Command::Stop { service } | Command::Remove { service } => {
            w.put(&service.to_le_bytes())?;
        }
        Command::Snapshot { service, offset } => {
            w.put(&service.to_le_bytes())?;
            w.put(&offset.to_le_bytes())?;
        }
        Command::Restore {
            service,
            total,
            offset,
            chunk,
        } => {
            w.put(&service.to_le_bytes())?;
            w.put(&total.to_le_bytes())?;
            w.put(&offset.to_le_bytes())?;
            w.put(chunk)?;
        }
        Command::SetRoute { port, target } => {
            w.put(&port.to_le_bytes())?;
            match target {
                RouteTarget::None => w.put(&[0])?,
                RouteTarget::Service(id) => {
                    w.put(&[1])?;
                    w.put(&id.to_le_bytes())?;
                }
                RouteTarget::Host => w.put(&[2])?,
            }
        }
    }
    Some(w.len)
}

impl Command<'_> {
    /// The command's opcode.
    pub fn opcode(&self) -> u8 {
        match self {
            Command::Deploy { .. } => op::DEPLOY,
            Command::Stop { .. } => op::STOP,
            Command::Snapshot { .. } => op::SNAPSHOT,
            Command::Restore { .. } => op::RESTORE,
            Command::SetRoute { .. } => op::SET_ROUTE,
            Command::Remove { .. } => op::REMOVE,
        }
    }
}

struct Writer<'a> {
    out: &'a mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.len.checked_add(bytes.len())?;
        self.out.get_mut(self.len..end)?.copy_from_slice(bytes);
        self.len = end;
        Some(())
    }
}

/// Writes the answer header (version, status, request id) into `out`; returns 4, or 0 when
/// `out` is too small.
pub fn write_answer_header(
    out: &mut [u8],
    request: u16,
    status: Result<(), CommandError>,
) -> usize {
    let status = match status {
        Ok(()) => 0,
        Err(error) => error.code(),
    };
    let [low, high] = request.to_le_bytes();
    match out.get_mut(..HEADER_LEN) {
        Some(header) => {
            header.copy_from_slice(&[VERSION, status, low, high]);
            HEADER_LEN
        }
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(command: Command<'_>) {
        let mut buffer = [0u8; 64];
        let len = encode(0x0a0b, &command, &mut buffer).unwrap();
        assert_eq!(parse(&buffer[..len]), (0x0a0b, Ok(command)));
        for short in 0..len {
            let (_, parsed) = parse(&buffer[..short]);
            // A cut command is truncated, except where the cut lands on a valid shorter form
            // (a deploy without config bytes, a restore with a shorter chunk).
            if let Ok(parsed) = parsed {
                assert!(matches!(
                    parsed,
                    Command::Deploy { .. } | Command::Restore { .. }
                ));
            }
        }
    }

    #[test]
    fn every_command_round_trips() {
        round_trip(Command::Deploy {
            service: 7,
            kind: ServiceKind::Kvs,
            port: 7001,
            config: &[1, 2, 3],
        });
        round_trip(Command::Stop { service: 7 });
        round_trip(Command::Snapshot {
            service: 7,
            offset: 1024,
        });
        round_trip(Command::Restore {
            service: 7,
            total: 10,
            offset: 8,
            chunk: &[9, 9],
        });
        for target in [
            RouteTarget::None,
            RouteTarget::Service(7),
            RouteTarget::Host,
        ] {
            round_trip(Command::SetRoute { port: 7001, target });
        }
        round_trip(Command::Remove { service: 7 });
    }

    #[test]
    fn the_documented_bytes() {
        // docs/orchestrator-commands.md: deploy KVS (catalogue index 6) as service 7 on 7001.
        let bytes = [1, 1, 0x2a, 0, 7, 0, 6, 0x59, 0x1b];
        assert_eq!(
            parse(&bytes),
            (
                42,
                Ok(Command::Deploy {
                    service: 7,
                    kind: ServiceKind::Kvs,
                    port: 7001,
                    config: &[]
                })
            )
        );
    }

    #[test]
    fn bad_commands_are_typed_errors() {
        assert_eq!(parse(&[1, 1]), (0, Err(CommandError::Truncated)));
        assert_eq!(parse(&[2, 1, 5, 0]), (5, Err(CommandError::BadVersion)));
        assert_eq!(parse(&[1, 99, 5, 0]), (5, Err(CommandError::BadOpcode)));
        assert_eq!(
            parse(&[1, 1, 5, 0, 7, 0, 200, 0, 0]).1,
            Err(CommandError::BadField)
        );
        assert_eq!(parse(&[1, 5, 5, 0, 1, 0, 9]).1, Err(CommandError::BadField));
        let restore_past_total = [1, 4, 5, 0, 7, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 2];
        assert_eq!(parse(&restore_past_total).1, Err(CommandError::BadField));
        for error in [
            CommandError::Truncated,
            CommandError::OutOfSequence,
            CommandError::NoMemory,
        ] {
            assert_eq!(CommandError::from_code(error.code()), Some(error));
        }
    }

    #[test]
    fn answer_header() {
        let mut out = [0u8; 4];
        assert_eq!(
            write_answer_header(&mut out, 0x0102, Err(CommandError::Full)),
            4
        );
        assert_eq!(out, [1, 7, 2, 1]);
        assert_eq!(write_answer_header(&mut out[..3], 1, Ok(())), 0);
    }
}
