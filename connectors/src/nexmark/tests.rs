//! Tests of the nexmark connector.

use std::collections::HashSet;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Field, Int32Type, Int64Type, TimestampMillisecondType};

use super::columns::Column;
use super::events::{FIRST_ID, HOT_STRIDE, NAMED_CHANNELS};
use super::*;
use crate::generator::{GeneratedColumn, BATCH_ROWS};
use crate::testutil::Drained;
use crate::testutil::{check_resume_everywhere, drain, poll_batches, rows_of, table, task};
use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use runnel_engine::operator::OperatorMetrics;
use runnel_engine::source::{Source, SourcePoll};

fn all_fields() -> Vec<Field> {
    Column::ALL
        .iter()
        .map(|c| Field::new(c.name(), c.data_type(), c.nullable()))
        .collect()
}

fn generate(options: &[(&str, &str)], parallelism: usize) -> Result<Drained> {
    drain(
        &NexmarkConnector.source(&table(all_fields(), options))?,
        parallelism,
    )
}

fn plan_error(fields: Vec<Field>, options: &[(&str, &str)]) -> String {
    match NexmarkConnector.source(&table(fields, options)) {
        Err(EngineError::Plan(msg)) => msg,
        Err(other) => panic!("expected a plan error, got {other}"),
        Ok(_) => panic!("expected a plan error"),
    }
}

fn index(column: Column) -> usize {
    Column::ALL
        .iter()
        .position(|c| *c == column)
        .expect("listed")
}

fn ints(batch: &RecordBatch, column: Column) -> Vec<Option<i64>> {
    batch
        .column(index(column))
        .as_primitive::<Int64Type>()
        .iter()
        .collect()
}

fn times(batch: &RecordBatch, column: Column) -> Vec<Option<i64>> {
    batch
        .column(index(column))
        .as_primitive::<TimestampMillisecondType>()
        .iter()
        .collect()
}

fn types(batch: &RecordBatch) -> Vec<i32> {
    batch
        .column(index(Column::EventType))
        .as_primitive::<Int32Type>()
        .values()
        .to_vec()
}

#[test]
fn proportions_are_exact() -> Result<()> {
    let d = generate(&[("number-of-events", "5000")], 1)?;
    assert_eq!(d.rows(), 5000);
    let mut counts = [0usize; 3];
    for batch in d.all() {
        assert!(batch.num_rows() <= BATCH_ROWS);
        for t in types(&batch) {
            counts[t as usize] += 1;
        }
    }
    assert_eq!(counts, [100, 300, 4600]);
    Ok(())
}

#[test]
fn same_seed_same_rows_different_seed_different_rows() -> Result<()> {
    let a = generate(&[("number-of-events", "3000"), ("seed", "7")], 1)?;
    let b = generate(&[("number-of-events", "3000"), ("seed", "7")], 1)?;
    let c = generate(&[("number-of-events", "3000"), ("seed", "8")], 1)?;
    assert_eq!(rows_of(&a.all())?, rows_of(&b.all())?);
    assert_ne!(a.sorted_rows()?, c.sorted_rows()?);
    Ok(())
}

#[test]
fn same_multiset_at_parallelism_one_and_three() -> Result<()> {
    let options = [("number-of-events", "10001")];
    let one = generate(&options, 1)?;
    let three = generate(&options, 3)?;
    assert_eq!(three.batches.len(), 3);
    assert!(three.batches.iter().all(|b| !b.is_empty()));
    assert_eq!(three.rows(), 10_001);
    assert_eq!(one.sorted_rows()?, three.sorted_rows()?);
    Ok(())
}

#[test]
fn referenced_ids_were_emitted_earlier() -> Result<()> {
    let d = generate(&[("number-of-events", "20000")], 1)?;
    let mut persons = HashSet::new();
    let mut auctions = HashSet::new();
    let (mut bids, mut hot) = (0usize, 0usize);
    for batch in d.all() {
        let person_id = ints(&batch, Column::PersonId);
        let auction_id = ints(&batch, Column::AuctionId);
        let seller = ints(&batch, Column::AuctionSeller);
        let bid_auction = ints(&batch, Column::BidAuction);
        let bidder = ints(&batch, Column::BidBidder);
        for (i, t) in types(&batch).into_iter().enumerate() {
            match t {
                0 => {
                    let id = person_id[i].expect("a person has an id");
                    assert_eq!(id, FIRST_ID as i64 + persons.len() as i64);
                    persons.insert(id);
                    assert!(auction_id[i].is_none() && bid_auction[i].is_none());
                }
                1 => {
                    let id = auction_id[i].expect("an auction has an id");
                    assert_eq!(id, FIRST_ID as i64 + auctions.len() as i64);
                    auctions.insert(id);
                    let s = seller[i].expect("a seller");
                    assert!(persons.contains(&s), "seller {s} unknown");
                    assert!(person_id[i].is_none() && bidder[i].is_none());
                }
                2 => {
                    let a = bid_auction[i].expect("a bid names an auction");
                    let b = bidder[i].expect("a bid names a bidder");
                    assert!(auctions.contains(&a), "auction {a} unknown");
                    assert!(persons.contains(&b), "bidder {b} unknown");
                    assert!(person_id[i].is_none() && auction_id[i].is_none());
                    bids += 1;
                    hot += usize::from(a % HOT_STRIDE as i64 == FIRST_ID as i64 % 100);
                }
                other => panic!("event type {other}"),
            }
        }
    }
    assert_eq!((persons.len(), auctions.len()), (400, 1200));
    // Half the bids go to the hot auction (plus recent ones that happen
    // to be hot).
    let share = hot as f64 / bids as f64;
    assert!((0.45..0.6).contains(&share), "hot share {share}");
    Ok(())
}

#[test]
fn values_are_plausible_and_times_advance() -> Result<()> {
    let d = generate(&[("number-of-events", "12000")], 3)?;
    let mut channels = HashSet::new();
    for subtask in &d.batches {
        let mut last = i64::MIN;
        for batch in subtask {
            let event_time = times(batch, Column::EventTime);
            let expires = times(batch, Column::AuctionExpires);
            let initial = ints(batch, Column::AuctionInitialBid);
            let reserve = ints(batch, Column::AuctionReserve);
            let category = ints(batch, Column::AuctionCategory);
            let price = ints(batch, Column::BidPrice);
            let channel = batch.column(index(Column::BidChannel)).as_string::<i32>();
            let url = batch.column(index(Column::BidUrl)).as_string::<i32>();
            let card = batch
                .column(index(Column::PersonCreditCard))
                .as_string::<i32>();
            for (i, t) in types(batch).into_iter().enumerate() {
                let time = event_time[i].expect("every event has a time");
                assert!(time >= last, "event time goes back");
                last = time;
                if t == 1 {
                    let (initial, reserve) = (initial[i].expect("bid"), reserve[i].expect("r"));
                    assert!(initial > 0 && reserve >= initial);
                    assert!(expires[i].expect("expires") > time);
                    assert!((10..15).contains(&category[i].expect("category")));
                }
                if t == 2 {
                    assert!(price[i].expect("price") > 0);
                    channels.insert(channel.value(i).to_string());
                    assert!(url.value(i).starts_with("https://www.nexmark.com/"));
                }
                if t == 0 {
                    assert_eq!(card.value(i).len(), 19, "{}", card.value(i));
                }
            }
        }
        assert!(last > DEFAULT_START_MS);
    }
    for named in NAMED_CHANNELS {
        assert!(channels.contains(named), "{named} missing");
    }
    assert!(channels.iter().any(|c| c.starts_with("channel-")));
    Ok(())
}

#[test]
fn most_bids_land_while_their_auction_is_open() -> Result<()> {
    let d = generate(&[("number-of-events", "20000")], 1)?;
    let mut open_until = std::collections::HashMap::new();
    let (mut bids, mut open) = (0usize, 0usize);
    for batch in d.all() {
        let event_time = times(&batch, Column::EventTime);
        let expires = times(&batch, Column::AuctionExpires);
        let auction_id = ints(&batch, Column::AuctionId);
        let bid_auction = ints(&batch, Column::BidAuction);
        for (i, t) in types(&batch).into_iter().enumerate() {
            if t == 1 {
                open_until.insert(auction_id[i], expires[i]);
            } else if t == 2 {
                bids += 1;
                let until = open_until.get(&bid_auction[i]).copied().flatten();
                open += usize::from(until.is_some_and(|u| event_time[i] < Some(u)));
            }
        }
    }
    // With the defaults a bid reaches at most 99 auctions back, which
    // opened less than the shortest auction length ago.
    assert_eq!(open, bids, "every bid hits an open auction");
    Ok(())
}

#[test]
fn event_time_follows_start_and_interval() -> Result<()> {
    let t = table(
        vec![Field::new(
            "event_time",
            Column::EventTime.data_type(),
            false,
        )],
        &[
            ("number-of-events", "10"),
            ("nexmark.start", "2026-03-01 12:00:00"),
            ("nexmark.event-interval-us", "2500"),
        ],
    );
    let d = drain(&NexmarkConnector.source(&t)?, 1)?;
    let start = parse_timestamp_millis("2026-03-01 12:00:00").expect("parses");
    let got: Vec<i64> = d
        .all()
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_primitive::<TimestampMillisecondType>()
                .values()
                .to_vec()
        })
        .collect();
    let expected: Vec<i64> = (0..10).map(|n| start + n * 25 / 10).collect();
    assert_eq!(got, expected);
    Ok(())
}

#[test]
fn cut_and_resume_equals_an_uninterrupted_run() -> Result<()> {
    let source = NexmarkConnector.source(&table(all_fields(), &[("number-of-events", "20000")]))?;
    let batches = check_resume_everywhere(&source, 0, 1)?;
    assert!(batches >= 4, "{batches} batches: cuts fall mid-run");
    for subtask in 0..3 {
        check_resume_everywhere(&source, subtask, 3)?;
    }
    // Kill after every batch and restore from the last position.
    let task = task(1, 2);
    let metrics = Arc::new(OperatorMetrics::default());
    let mut whole = (source.factory)(&task)?;
    whole.open(&task, &metrics)?;
    let (all, _, _) = poll_batches(whole.as_mut(), usize::MAX)?;
    let mut got = Vec::new();
    let mut position: Option<Vec<u8>> = None;
    loop {
        let mut src = (source.factory)(&task)?;
        src.open(&task, &metrics)?;
        if let Some(p) = &position {
            src.restore_position(p)?;
        }
        let (batches, _, done) = poll_batches(src.as_mut(), 1)?;
        got.extend(batches);
        position = Some(src.snapshot_position()?);
        if done {
            break;
        }
    }
    assert_eq!(rows_of(&got)?, rows_of(&all)?);
    Ok(())
}

#[test]
fn damaged_or_foreign_positions_are_errors() -> Result<()> {
    let source = NexmarkConnector.source(&table(all_fields(), &[("number-of-events", "9000")]))?;
    let metrics = Arc::new(OperatorMetrics::default());
    let fresh = |subtask, parallelism| -> Result<Box<dyn Source>> {
        let task = task(subtask, parallelism);
        let mut src = (source.factory)(&task)?;
        src.open(&task, &metrics)?;
        Ok(src)
    };
    let mut src = fresh(1, 3)?;
    poll_batches(src.as_mut(), 1)?;
    let good = src.snapshot_position()?;
    fresh(1, 3)?.restore_position(&good)?;
    let mut damaged = vec![vec![], vec![2], good[..good.len() - 1].to_vec()];
    damaged.push([good.as_slice(), &[0]].concat());
    let mut wrong_version = good.clone();
    wrong_version[0] = 9;
    damaged.push(wrong_version);
    for bytes in &damaged {
        match fresh(1, 3)?.restore_position(bytes) {
            Err(EngineError::Plan(msg)) => assert!(msg.contains("nexmark"), "{msg}"),
            Err(other) => panic!("expected a plan error, got {other}"),
            Ok(()) => panic!("position {bytes:?} must be rejected"),
        }
    }
    // Another subtask or parallelism would emit other events.
    match fresh(2, 3)?.restore_position(&good) {
        Err(EngineError::Plan(msg)) => assert!(msg.contains("subtask 2 of 3"), "{msg}"),
        other => panic!("expected a plan error, got {other:?}"),
    }
    match fresh(1, 2)?.restore_position(&good) {
        Err(EngineError::Plan(msg)) => assert!(msg.contains("parallelism"), "{msg}"),
        other => panic!("expected a plan error, got {other:?}"),
    }
    Ok(())
}

#[test]
fn columns_are_selected_by_name_in_table_order() -> Result<()> {
    let t = table(
        vec![
            Field::new("BID_PRICE", DataType::Int64, true),
            Field::new("event_type", DataType::Int32, false),
        ],
        &[("number-of-events", "100")],
    );
    let d = drain(&NexmarkConnector.source(&t)?, 1)?;
    let batch = d.all().into_iter().next().expect("a batch");
    assert_eq!(batch.num_columns(), 2);
    let price = batch.column(0).as_primitive::<Int64Type>();
    let kind = batch.column(1).as_primitive::<Int32Type>();
    assert_eq!(kind.value(0), 0);
    assert!(price.is_null(0), "a person has no bid price");
    assert!(kind.value(4) == 2 && price.value(4) > 0);
    Ok(())
}

#[test]
fn unknown_column_and_wrong_type_are_plan_errors() {
    let msg = plan_error(vec![Field::new("bid_price", DataType::Float64, true)], &[]);
    assert!(
        msg.contains("'bid_price'") && msg.contains("BIGINT"),
        "{msg}"
    );
    assert!(msg.contains("event_time TIMESTAMP(3)"), "{msg}");
    let msg = plan_error(vec![Field::new("bid_time", DataType::Int64, true)], &[]);
    assert!(
        msg.contains("'bid_time'") && msg.contains("available columns"),
        "{msg}"
    );
    assert!(
        msg.contains("event_type INT") && msg.contains("bid_url STRING"),
        "{msg}"
    );
    let msg = plan_error(vec![Field::new("person_id", DataType::Int64, false)], &[]);
    assert!(msg.contains("NOT NULL"), "{msg}");
}

#[test]
fn invalid_options_are_plan_errors_naming_the_option() {
    let fields = || vec![Field::new("event_type", DataType::Int32, false)];
    for (key, value) in [
        ("number-of-events", "many"),
        ("rows-per-second", "-3"),
        ("seed", "x"),
        ("nexmark.start", "soon"),
        ("nexmark.event-interval-us", "0"),
        ("nexmark.hot-auction-ratio", "1.5"),
        ("nexmark.hot-bidder-ratio", "often"),
        ("nexmark.in-flight-auctions", "0"),
        ("nexmark.active-people", "100000000000"),
        ("nexmark.auction-duration-ms", "0"),
    ] {
        let msg = plan_error(fields(), &[(key, value)]);
        assert!(msg.contains(&format!("'{key}'")), "{key}: {msg}");
    }
}

#[test]
fn unbounded_by_default_and_cannot_be_written() -> Result<()> {
    let t = table(all_fields(), &[]);
    let source = NexmarkConnector.source(&t)?;
    assert!(!source.bounded);
    let task = task(0, 1);
    let mut src = (source.factory)(&task)?;
    src.open(&task, &Arc::new(OperatorMetrics::default()))?;
    // Paced: the first poll, right after the clock starts, has nothing.
    assert!(matches!(src.poll()?, SourcePoll::Pending));
    assert!(matches!(
        NexmarkConnector.sink(&t, false),
        Err(EngineError::Plan(_))
    ));
    Ok(())
}
