//! `Echo`: a diagnostic service, not one of the catalogue's: it answers status 0 followed by
//! the request's bytes. Runtimes and their tests use it to check a path end to end (the NIC
//! runtime's software NIC, the host node, `e3 serve --service PORT=echo`): whatever arrives
//! must come back unchanged, to the right address.

use crate::kind::ServiceKind;
use crate::service::{Context, Service, ServiceError, ServiceId, ServiceIdentity};

/// Answers every request with status 0 and the request's bytes; keeps no state.
#[derive(Clone, Copy, Debug)]
pub struct Echo {
    id: ServiceId,
}

impl Echo {
    /// An echo instance.
    pub fn new(id: ServiceId) -> Echo {
        Echo { id }
    }
}

impl Service for Echo {
    fn identity(&self) -> ServiceIdentity {
        ServiceIdentity {
            id: self.id,
            // The catalogue has no diagnostic kind; Count is the closest in cost.
            kind: ServiceKind::Count,
            name: "echo",
            stateful: false,
            request_size_hint: 64,
            cost_hint_ns: 50,
        }
    }

    fn handle(
        &mut self,
        _: &mut Context<'_>,
        request: &[u8],
        response: &mut [u8],
    ) -> Result<usize, ServiceError> {
        let out = response
            .get_mut(..request.len() + 1)
            .ok_or(ServiceError::ResponseTooSmall)?;
        out[0] = 0;
        out[1..].copy_from_slice(request);
        Ok(request.len() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::SoftwareEngines;

    #[test]
    fn answers_the_request_or_says_the_buffer_is_too_small() {
        let mut echo = Echo::new(ServiceId(3));
        let mut ctx = Context::new(&SoftwareEngines, 0);
        let mut response = [0xffu8; 8];
        assert_eq!(echo.serve(&mut ctx, b"hello", &mut response), (6, None));
        assert_eq!(&response[..6], b"\0hello");
        assert_eq!(echo.serve(&mut ctx, b"", &mut response), (1, None));
        assert_eq!(
            echo.serve(&mut ctx, b"too long!", &mut response),
            (1, Some(ServiceError::ResponseTooSmall))
        );
        assert_eq!(echo.identity().id, ServiceId(3));
    }
}
