//! `Echo`: a diagnostic service that answers status 0 followed by the request, for checking a
//! path end to end (`e3 serve --service 7=echo`, the node tests).

use microservices::{Context, Service, ServiceError, ServiceId, ServiceIdentity, ServiceKind};

/// Answers every request with status 0 and the request's bytes.
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
