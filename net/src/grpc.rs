//! The gRPC answer for an error every service of Cairn gives the same way: its status code and
//! message, and, when waiting helps, a `RetryInfo` detail saying how long to wait first.

use std::time::Duration;

use tonic_types::{ErrorDetails, StatusExt};

/// A `tonic::Status` with `code` and `message`, carrying `RetryInfo` when `retry_after_secs`
/// is given.
pub fn status(code: tonic::Code, message: String, retry_after_secs: Option<u64>) -> tonic::Status {
    match retry_after_secs {
        Some(secs) => tonic::Status::with_error_details(
            code,
            message,
            ErrorDetails::with_retry_info(Some(Duration::from_secs(secs))),
        ),
        None => tonic::Status::new(code, message),
    }
}
