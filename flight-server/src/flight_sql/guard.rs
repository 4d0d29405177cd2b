//! Checks a request's SQL text before arrow-flight decodes it.
//!
//! Flight SQL sends SQL as a protobuf `string`. When the bytes are not
//! UTF-8, arrow-flight's decoding fails inside the `FlightSqlService`
//! dispatch and the client gets INTERNAL, with no hint of where the bad
//! byte is. [`Guarded`] wraps the service: for the messages that carry SQL
//! text (a statement query or update, a prepared statement's creation) it
//! reads the text as raw bytes first and answers INVALID_ARGUMENT with the
//! line and column of the first byte that is not UTF-8. Everything else
//! passes through unchanged.

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::Any;
use arrow_flight::{
    Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, PollInfo,
    SchemaResult, Ticket,
};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

/// The service `S` with SQL text checked before it decodes it.
pub struct Guarded<S>(pub S, pub std::sync::Arc<crate::requests::RequestStats>);

/// The messages whose first field is the SQL text.
const SQL_MESSAGES: &[&str] = &[
    "type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery",
    "type.googleapis.com/arrow.flight.protocol.sql.CommandStatementUpdate",
    "type.googleapis.com/arrow.flight.protocol.sql.ActionCreatePreparedStatementRequest",
];

/// Field 1 of the messages above, read as bytes rather than as a string.
#[derive(Clone, PartialEq, Message)]
struct RawSqlText {
    #[prost(bytes = "vec", tag = "1")]
    query: Vec<u8>,
}

/// INVALID_ARGUMENT when `packed` (an encoded `Any`) holds a SQL text that
/// is not UTF-8; anything it cannot read is left to the service.
pub(super) fn check_sql_text(packed: &[u8]) -> Result<(), Status> {
    let Ok(any) = Any::decode(packed) else {
        return Ok(());
    };
    if !SQL_MESSAGES.contains(&any.type_url.as_str()) {
        return Ok(());
    }
    let Ok(raw) = RawSqlText::decode(&*any.value) else {
        return Ok(());
    };
    match std::str::from_utf8(&raw.query) {
        Ok(_) => Ok(()),
        Err(e) => {
            let valid = &raw.query[..e.valid_up_to()];
            // Valid up to here, so this cannot fail.
            let before = std::str::from_utf8(valid).unwrap_or_default();
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            let at = e.valid_up_to();
            Err(Status::invalid_argument(match e.error_len() {
                Some(_) => format!(
                    "the SQL text is not valid UTF-8: byte 0x{:02X} at line {line}, column \
                     {column} (byte offset {at}) is not part of a valid UTF-8 character",
                    raw.query[at]
                ),
                None => format!(
                    "the SQL text is not valid UTF-8: it ends inside a character at line \
                     {line}, column {column} (byte offset {at})"
                ),
            }))
        }
    }
}

/// A decoding failure that arrow-flight reports as INTERNAL is the
/// client's bad input: INVALID_ARGUMENT.
fn undecodable_is_invalid(status: Status) -> Status {
    if status.code() == tonic::Code::Internal && status.message().contains("Unable to decode") {
        Status::invalid_argument(format!(
            "the request cannot be decoded: {}",
            status.message()
        ))
    } else {
        status
    }
}

#[tonic::async_trait]
impl<S: FlightService> FlightService for Guarded<S> {
    type HandshakeStream = S::HandshakeStream;
    type ListFlightsStream = S::ListFlightsStream;
    type DoGetStream = S::DoGetStream;
    type DoPutStream = S::DoPutStream;
    type DoExchangeStream = S::DoExchangeStream;
    type DoActionStream = S::DoActionStream;
    type ListActionsStream = S::ListActionsStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        let started = std::time::Instant::now();
        let result = async { self.0.handshake(request).await }.await;
        self.1
            .record("handshake", started.elapsed(), result.is_ok());
        result
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        let started = std::time::Instant::now();
        let result = async { self.0.list_flights(request).await }.await;
        self.1
            .record("list_flights", started.elapsed(), result.is_ok());
        result
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let started = std::time::Instant::now();
        let result = async {
            check_sql_text(&request.get_ref().cmd)?;
            self.0
                .get_flight_info(request)
                .await
                .map_err(undecodable_is_invalid)
        }
        .await;
        self.1
            .record("get_flight_info", started.elapsed(), result.is_ok());
        result
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        let started = std::time::Instant::now();
        let result = async {
            check_sql_text(&request.get_ref().cmd)?;
            self.0
                .poll_flight_info(request)
                .await
                .map_err(undecodable_is_invalid)
        }
        .await;
        self.1
            .record("poll_flight_info", started.elapsed(), result.is_ok());
        result
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        let started = std::time::Instant::now();
        let result = async {
            check_sql_text(&request.get_ref().cmd)?;
            self.0
                .get_schema(request)
                .await
                .map_err(undecodable_is_invalid)
        }
        .await;
        self.1
            .record("get_schema", started.elapsed(), result.is_ok());
        result
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let started = std::time::Instant::now();
        let result = async { self.0.do_get(request).await.map_err(undecodable_is_invalid) }.await;
        self.1.record("do_get", started.elapsed(), result.is_ok());
        result
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let started = std::time::Instant::now();
        let result = async {
            // The command is inside the stream's first message, which only the
            // service reads; its decoding failure is mapped instead.
            self.0.do_put(request).await.map_err(undecodable_is_invalid)
        }
        .await;
        self.1.record("do_put", started.elapsed(), result.is_ok());
        result
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        let started = std::time::Instant::now();
        let result = async { self.0.do_exchange(request).await }.await;
        self.1
            .record("do_exchange", started.elapsed(), result.is_ok());
        result
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let started = std::time::Instant::now();
        let result = async {
            check_sql_text(&request.get_ref().body)?;
            self.0
                .do_action(request)
                .await
                .map_err(undecodable_is_invalid)
        }
        .await;
        self.1
            .record("do_action", started.elapsed(), result.is_ok());
        result
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let started = std::time::Instant::now();
        let result = async { self.0.list_actions(request).await }.await;
        self.1
            .record("list_actions", started.elapsed(), result.is_ok());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_flight::sql::{CommandGetCatalogs, ProstMessageExt};

    fn packed(type_url: &str, query: &[u8]) -> Vec<u8> {
        Any {
            type_url: type_url.to_string(),
            value: RawSqlText {
                query: query.to_vec(),
            }
            .encode_to_vec()
            .into(),
        }
        .encode_to_vec()
    }

    #[test]
    fn a_bad_byte_is_reported_with_its_line_and_column() {
        let err = check_sql_text(&packed(
            SQL_MESSAGES[0],
            b"SELECT 1\nFROM t WHERE s = '\xff'",
        ))
        .expect_err("not UTF-8");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message().contains("byte 0xFF at line 2, column 19"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn valid_text_and_other_messages_pass() {
        for url in SQL_MESSAGES {
            assert!(check_sql_text(&packed(url, "SELECT 'é'".as_bytes())).is_ok());
        }
        let catalogs = CommandGetCatalogs {}.as_any().encode_to_vec();
        assert!(check_sql_text(&catalogs).is_ok());
        assert!(check_sql_text(b"not protobuf at all \xff").is_ok());
    }
}
