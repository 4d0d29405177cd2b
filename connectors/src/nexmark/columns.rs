//! The columns a nexmark table may declare, and the builders that turn
//! events into those columns.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, TimeUnit};

use super::events::{Body, Event};
use crate::generator::GeneratedColumn;

/// The columns a nexmark table may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Column {
    EventType,
    EventTime,
    PersonId,
    PersonName,
    PersonEmail,
    PersonCreditCard,
    PersonCity,
    PersonState,
    AuctionId,
    AuctionItemName,
    AuctionDescription,
    AuctionInitialBid,
    AuctionReserve,
    AuctionExpires,
    AuctionSeller,
    AuctionCategory,
    BidAuction,
    BidBidder,
    BidPrice,
    BidChannel,
    BidUrl,
}

impl Column {
    pub(super) const ALL: [Column; 21] = [
        Column::EventType,
        Column::EventTime,
        Column::PersonId,
        Column::PersonName,
        Column::PersonEmail,
        Column::PersonCreditCard,
        Column::PersonCity,
        Column::PersonState,
        Column::AuctionId,
        Column::AuctionItemName,
        Column::AuctionDescription,
        Column::AuctionInitialBid,
        Column::AuctionReserve,
        Column::AuctionExpires,
        Column::AuctionSeller,
        Column::AuctionCategory,
        Column::BidAuction,
        Column::BidBidder,
        Column::BidPrice,
        Column::BidChannel,
        Column::BidUrl,
    ];

    /// Only the columns every event has are never NULL.
    pub(super) fn nullable(self) -> bool {
        !matches!(self, Column::EventType | Column::EventTime)
    }
}

impl GeneratedColumn for Column {
    fn all() -> &'static [Self] {
        &Self::ALL
    }

    fn name(self) -> &'static str {
        match self {
            Column::EventType => "event_type",
            Column::EventTime => "event_time",
            Column::PersonId => "person_id",
            Column::PersonName => "person_name",
            Column::PersonEmail => "person_email",
            Column::PersonCreditCard => "person_credit_card",
            Column::PersonCity => "person_city",
            Column::PersonState => "person_state",
            Column::AuctionId => "auction_id",
            Column::AuctionItemName => "auction_item_name",
            Column::AuctionDescription => "auction_description",
            Column::AuctionInitialBid => "auction_initial_bid",
            Column::AuctionReserve => "auction_reserve",
            Column::AuctionExpires => "auction_expires",
            Column::AuctionSeller => "auction_seller",
            Column::AuctionCategory => "auction_category",
            Column::BidAuction => "bid_auction",
            Column::BidBidder => "bid_bidder",
            Column::BidPrice => "bid_price",
            Column::BidChannel => "bid_channel",
            Column::BidUrl => "bid_url",
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Column::EventType => DataType::Int32,
            Column::EventTime | Column::AuctionExpires => {
                DataType::Timestamp(TimeUnit::Millisecond, None)
            }
            Column::PersonName
            | Column::PersonEmail
            | Column::PersonCreditCard
            | Column::PersonCity
            | Column::PersonState
            | Column::AuctionItemName
            | Column::AuctionDescription
            | Column::BidChannel
            | Column::BidUrl => DataType::Utf8,
            _ => DataType::Int64,
        }
    }

    fn sql_type(self) -> &'static str {
        match self.data_type() {
            DataType::Int32 => "INT",
            DataType::Int64 => "BIGINT",
            DataType::Utf8 => "STRING",
            _ => "TIMESTAMP(3)",
        }
    }
}

/// A growing output column.
pub(super) enum Builder {
    Int32(Int32Builder),
    Int64(Int64Builder),
    Time(TimestampMillisecondBuilder),
    Text(StringBuilder),
}

impl Builder {
    pub(super) fn new(column: Column, rows: usize) -> Self {
        match column.data_type() {
            DataType::Int32 => Builder::Int32(Int32Builder::with_capacity(rows)),
            DataType::Int64 => Builder::Int64(Int64Builder::with_capacity(rows)),
            DataType::Utf8 => Builder::Text(StringBuilder::new()),
            _ => Builder::Time(TimestampMillisecondBuilder::with_capacity(rows)),
        }
    }

    pub(super) fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Time(b) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
        }
    }

    /// Appends `column` of `e`: NULL when the event has no such field.
    pub(super) fn append(&mut self, column: Column, e: &Event) {
        use Body::{Auction as A, Bid as B, Person as P};
        match self {
            Builder::Int32(b) => b.append_value(match e.body {
                P(_) => 0,
                A(_) => 1,
                B(_) => 2,
            }),
            Builder::Time(b) => b.append_option(match (column, &e.body) {
                (Column::AuctionExpires, A(a)) => Some(a.expires),
                (Column::AuctionExpires, _) => None,
                _ => Some(e.time),
            }),
            Builder::Int64(b) => b.append_option(match (column, &e.body) {
                (Column::PersonId, P(p)) => Some(p.id),
                (Column::AuctionId, A(a)) => Some(a.id),
                (Column::AuctionInitialBid, A(a)) => Some(a.initial_bid),
                (Column::AuctionReserve, A(a)) => Some(a.reserve),
                (Column::AuctionSeller, A(a)) => Some(a.seller),
                (Column::AuctionCategory, A(a)) => Some(a.category),
                (Column::BidAuction, B(b)) => Some(b.auction),
                (Column::BidBidder, B(b)) => Some(b.bidder),
                (Column::BidPrice, B(b)) => Some(b.price),
                _ => None,
            }),
            Builder::Text(b) => b.append_option(match (column, &e.body) {
                (Column::PersonName, P(p)) => Some(p.name.as_str()),
                (Column::PersonEmail, P(p)) => Some(p.email.as_str()),
                (Column::PersonCreditCard, P(p)) => Some(p.credit_card.as_str()),
                (Column::PersonCity, P(p)) => Some(p.city),
                (Column::PersonState, P(p)) => Some(p.state),
                (Column::AuctionItemName, A(a)) => Some(a.item_name.as_str()),
                (Column::AuctionDescription, A(a)) => Some(a.description.as_str()),
                (Column::BidChannel, B(b)) => Some(b.channel.as_str()),
                (Column::BidUrl, B(b)) => Some(b.url.as_str()),
                _ => None,
            }),
        }
    }
}
