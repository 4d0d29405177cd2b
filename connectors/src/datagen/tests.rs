//! Tests of the datagen connector.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Field, Float64Type, TimestampMillisecondType};

use super::*;
use crate::generator::{GeneratedColumn, BATCH_ROWS};
use crate::testutil::{
    check_resume_everywhere, drain, poll_batches, rows_of, table, task, Drained,
};
use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use runnel_engine::operator::OperatorMetrics;
use runnel_engine::source::{Source, SourcePoll};

fn all_fields() -> Vec<Field> {
    IotColumn::ALL
        .iter()
        .map(|c| Field::new(c.name(), c.data_type(), true))
        .collect()
}

fn generate(options: &[(&str, &str)], parallelism: usize) -> Result<Drained> {
    let t = table(all_fields(), options);
    drain(&DatagenConnector.source(&t)?, parallelism)
}

fn plan_error(fields: Vec<Field>, options: &[(&str, &str)]) -> String {
    match DatagenConnector.source(&table(fields, options)) {
        Err(EngineError::Plan(msg)) => msg,
        Err(other) => panic!("expected a plan error, got {other}"),
        Ok(_) => panic!("expected a plan error"),
    }
}

/// (device_id, event_time) of every row, in emission order.
fn device_times(d: &Drained) -> Vec<(Option<String>, i64)> {
    let mut out = Vec::new();
    for batch in d.all() {
        let ids = batch.column(1).as_string::<i32>();
        let times = batch.column(0).as_primitive::<TimestampMillisecondType>();
        for i in 0..batch.num_rows() {
            let id = ids.is_valid(i).then(|| ids.value(i).to_string());
            out.push((id, times.value(i)));
        }
    }
    out
}

#[test]
fn same_seed_same_rows_different_seed_different_rows() -> Result<()> {
    let a = generate(&[("number-of-rows", "3000"), ("seed", "7")], 1)?;
    let b = generate(&[("number-of-rows", "3000"), ("seed", "7")], 1)?;
    let c = generate(&[("number-of-rows", "3000"), ("seed", "8")], 1)?;
    assert_eq!(a.sorted_rows()?, b.sorted_rows()?);
    assert_ne!(a.sorted_rows()?, c.sorted_rows()?);
    Ok(())
}

#[test]
fn same_multiset_at_parallelism_one_and_three() -> Result<()> {
    let options = [
        ("number-of-rows", "5000"),
        ("iot.devices", "100"),
        ("iot.missing-device-rate", "0.1"),
        ("iot.malformed-rate", "0.05"),
        ("iot.late-rate", "0.1"),
    ];
    let one = generate(&options, 1)?;
    let three = generate(&options, 3)?;
    assert_eq!(three.batches.len(), 3);
    assert!(
        three.batches.iter().all(|b| !b.is_empty()),
        "every subtask works"
    );
    assert_eq!(one.sorted_rows()?, three.sorted_rows()?);
    Ok(())
}

#[test]
fn number_of_rows_is_exact_at_any_parallelism() -> Result<()> {
    for parallelism in [1, 3, 4, 7] {
        let d = generate(
            &[("number-of-rows", "10007"), ("iot.devices", "2000")],
            parallelism,
        )?;
        assert_eq!(d.rows(), 10_007, "parallelism {parallelism}");
        let max_batch = d.all().iter().map(RecordBatch::num_rows).max().unwrap_or(0);
        assert!(max_batch <= BATCH_ROWS);
    }
    // More subtasks than devices: the idle ones finish at once.
    let d = generate(&[("number-of-rows", "10"), ("iot.devices", "2")], 4)?;
    assert_eq!(d.rows(), 10);
    Ok(())
}

#[test]
fn outages_silence_whole_device_hours() -> Result<()> {
    // 50 devices, one reading a minute, 10 hours: 500 device-hours.
    let d = generate(
        &[
            ("number-of-rows", "30000"),
            ("iot.devices", "50"),
            ("iot.interval-ms", "60000"),
            ("iot.outage-rate", "0.2"),
        ],
        2,
    )?;
    let mut per_slot: std::collections::HashMap<(String, i64), usize> =
        std::collections::HashMap::new();
    let start = DEFAULT_START_MS;
    for (device, t) in device_times(&d) {
        let device = device.expect("no missing ids configured");
        *per_slot
            .entry((device, (t - start).div_euclid(3_600_000)))
            .or_default() += 1;
    }
    let silent = 500 - per_slot.len();
    assert!(
        (60..=140).contains(&silent),
        "{silent} of 500 device-hours silent, expected about 100"
    );
    // A device-hour is either silent or complete (60 readings; device
    // offsets may move one reading across an hour boundary).
    assert!(
        per_slot.values().all(|&n| n >= 59),
        "partial outage hours: {per_slot:?}"
    );
    let rows: usize = d.all().iter().map(|b| b.num_rows()).sum();
    assert!(
        (21_000..=27_000).contains(&rows),
        "{rows} rows sent of 30000 scheduled"
    );
    Ok(())
}

#[test]
fn rates_are_roughly_respected() -> Result<()> {
    let d = generate(
        &[
            ("number-of-rows", "20000"),
            ("iot.missing-device-rate", "0.1"),
            ("iot.bad-temperature-rate", "0.05"),
            ("iot.malformed-rate", "0.03"),
        ],
        2,
    )?;
    let (mut missing, mut bad, mut malformed, mut garbage_status, mut total) = (0, 0, 0, 0, 0);
    for batch in d.all() {
        let ids = batch.column(1).as_string::<i32>();
        let temps = batch.column(3).as_primitive::<Float64Type>();
        let statuses = batch.column(5).as_string::<i32>();
        let raws = batch.column(6).as_string::<i32>();
        for i in 0..batch.num_rows() {
            total += 1;
            missing += usize::from(ids.is_null(i));
            let status_ok = ["active", "idle", "faulty"].contains(&statuses.value(i));
            if temps.is_null(i) {
                malformed += 1;
                garbage_status += usize::from(!status_ok);
                assert!(!raws.value(i).ends_with('}'), "malformed raw is cut short");
            } else {
                assert!(status_ok, "{}", statuses.value(i));
                assert!(raws.value(i).starts_with('{') && raws.value(i).ends_with('}'));
                bad += usize::from(temps.value(i) == 9999.0);
            }
        }
    }
    assert_eq!(total, 20_000);
    let close = |n: usize, rate: f64| (n as f64 / total as f64 - rate).abs() < 0.02;
    assert!(close(missing, 0.1), "missing {missing}");
    // Bad temperatures are drawn among all rows, malformed ones hide some.
    assert!(close(bad, 0.05 * 0.97), "bad {bad}");
    assert!(close(malformed, 0.03), "malformed {malformed}");
    assert_eq!(
        garbage_status, malformed,
        "malformed rows carry a garbage status"
    );
    Ok(())
}

#[test]
fn temperatures_are_realistic() -> Result<()> {
    let d = generate(&[("number-of-rows", "20000")], 1)?;
    let mut temps = Vec::new();
    for batch in d.all() {
        temps.extend(
            batch
                .column(3)
                .as_primitive::<Float64Type>()
                .iter()
                .flatten(),
        );
    }
    assert_eq!(temps.len(), 20_000, "no NULLs without a malformed rate");
    assert!(temps.iter().all(|t| (30.0..=115.0).contains(t)));
    assert!(temps.iter().any(|t| *t > 90.0), "some hot readings");
    assert!(temps.iter().any(|t| *t < 60.0), "some cool readings");
    Ok(())
}

#[test]
fn late_rows_are_behind_their_devices_previous_reading() -> Result<()> {
    let rows = |late: &str| -> Result<Vec<(Option<String>, i64)>> {
        Ok(device_times(&generate(
            &[
                ("number-of-rows", "20000"),
                ("iot.devices", "200"),
                ("iot.late-rate", late),
            ],
            3,
        )?))
    };
    let count_behind = |rows: &[(Option<String>, i64)]| {
        let mut previous: HashMap<String, i64> = HashMap::new();
        let mut behind = 0;
        for (id, time) in rows {
            let id = id.clone().expect("no missing ids without a missing rate");
            if let Some(prev) = previous.insert(id, *time) {
                behind += usize::from(*time < prev);
            }
        }
        behind
    };
    assert_eq!(
        count_behind(&rows("0")?),
        0,
        "on-time readings advance per device"
    );
    let behind = count_behind(&rows("0.1")?);
    // About 10% late; a late row right after another late row is not
    // behind it, so a bit less is seen.
    assert!((1400..=2200).contains(&behind), "behind {behind}");
    Ok(())
}

#[test]
fn event_times_follow_interval_and_start() -> Result<()> {
    let d = generate(
        &[
            ("number-of-rows", "40"),
            ("iot.devices", "10"),
            ("iot.interval-ms", "1000"),
            ("iot.start", "2026-03-01 12:00:00"),
        ],
        1,
    )?;
    let times: Vec<i64> = device_times(&d).into_iter().map(|(_, t)| t).collect();
    let start = parse_timestamp_millis("2026-03-01 12:00:00").expect("parses");
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "event-time order");
    assert!(times.iter().all(|t| (start..start + 4000).contains(t)));
    Ok(())
}

#[test]
fn columns_are_selected_by_name_in_table_order() -> Result<()> {
    let t = table(
        vec![
            Field::new("temperature", DataType::Float64, true),
            Field::new("DEVICE_ID", DataType::Utf8, true),
        ],
        &[("number-of-rows", "100")],
    );
    let d = drain(&DatagenConnector.source(&t)?, 1)?;
    let batch = d.all().into_iter().next().expect("a batch");
    assert_eq!(batch.num_columns(), 2);
    assert_eq!(batch.schema().field(0).name(), "temperature");
    assert!(batch.column(0).as_primitive_opt::<Float64Type>().is_some());
    assert!(batch
        .column(1)
        .as_string::<i32>()
        .value(0)
        .starts_with("device-"));
    Ok(())
}

#[test]
fn wrong_type_and_unknown_column_are_plan_errors() {
    let msg = plan_error(vec![Field::new("temperature", DataType::Int32, true)], &[]);
    assert!(
        msg.contains("'temperature'") && msg.contains("DOUBLE"),
        "{msg}"
    );
    assert!(msg.contains("event_time TIMESTAMP(3)"), "{msg}");
    let msg = plan_error(vec![Field::new("pressure", DataType::Float64, true)], &[]);
    assert!(
        msg.contains("'pressure'") && msg.contains("available columns"),
        "{msg}"
    );
    assert!(msg.contains("raw STRING"), "{msg}");
    let msg = plan_error(
        vec![Field::new("device_id", DataType::Utf8, false)],
        &[("iot.missing-device-rate", "0.1")],
    );
    assert!(msg.contains("NOT NULL"), "{msg}");
}

#[test]
fn invalid_options_are_plan_errors_naming_the_option() {
    let fields = || vec![Field::new("region", DataType::Utf8, true)];
    for (key, value) in [
        ("iot.late-rate", "1.5"),
        ("iot.malformed-rate", "often"),
        ("iot.devices", "0"),
        ("iot.devices", "100000000000"),
        ("iot.start", "soon"),
        ("rows-per-second", "-3"),
    ] {
        let msg = plan_error(fields(), &[(key, value)]);
        assert!(msg.contains(&format!("'{key}'")), "{msg}");
    }
}

#[test]
fn regions_are_named() -> Result<()> {
    let t = table(
        vec![Field::new("region", DataType::Utf8, true)],
        &[
            ("number-of-rows", "700"),
            ("iot.devices", "700"),
            ("iot.regions", "7"),
        ],
    );
    let d = drain(&DatagenConnector.source(&t)?, 1)?;
    let mut names: Vec<String> = d
        .all()
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(
        names,
        ["central", "east", "north", "region-6", "region-7", "south", "west"]
    );
    Ok(())
}

#[test]
fn unbounded_generation_is_paced() -> Result<()> {
    let t = table(all_fields(), &[("rows-per-second", "1000")]);
    let source = DatagenConnector.source(&t)?;
    assert!(!source.bounded);
    let task = task(0, 1);
    let mut src = (source.factory)(&task)?;
    src.open(&task, &Arc::new(OperatorMetrics::default()))?;
    let started = Instant::now();
    let (mut rows, mut pending) = (0, 0);
    while started.elapsed() < Duration::from_millis(100) {
        match src.poll()? {
            SourcePoll::Batch { batch, .. } => rows += batch.num_rows(),
            SourcePoll::Pending => {
                pending += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            other => panic!("an unbounded source does not {other:?}"),
        }
    }
    let limit = (started.elapsed().as_secs_f64() * 1000.0) as usize + 1;
    assert!(rows >= 1 && rows <= limit, "rows {rows}, limit {limit}");
    assert!(pending > 0);
    Ok(())
}

#[test]
fn resume_continues_exactly_after_the_last_row() -> Result<()> {
    let options = [
        ("number-of-rows", "20000"),
        ("iot.devices", "300"),
        ("iot.interval-ms", "60000"),
        ("iot.outage-rate", "0.2"),
        ("iot.missing-device-rate", "0.1"),
        ("iot.late-rate", "0.1"),
    ];
    let source = DatagenConnector.source(&table(all_fields(), &options))?;
    let batches = check_resume_everywhere(&source, 0, 1)?;
    assert!(batches >= 4, "{batches} batches: cuts fall mid-run");
    for subtask in 0..3 {
        check_resume_everywhere(&source, subtask, 3)?;
    }
    // Subtasks without devices resume too.
    let tiny = DatagenConnector.source(&table(
        all_fields(),
        &[("number-of-rows", "10"), ("iot.devices", "2")],
    ))?;
    for subtask in 0..4 {
        check_resume_everywhere(&tiny, subtask, 4)?;
    }
    Ok(())
}

#[test]
fn a_resumed_run_equals_an_uninterrupted_one_across_several_restarts() -> Result<()> {
    let source = DatagenConnector.source(&table(
        all_fields(),
        &[("number-of-rows", "9000"), ("iot.devices", "77")],
    ))?;
    let task = task(0, 1);
    let metrics = Arc::new(OperatorMetrics::default());
    let mut whole = (source.factory)(&task)?;
    whole.open(&task, &metrics)?;
    let (all, _, _) = poll_batches(whole.as_mut(), usize::MAX)?;
    // Kill after every batch and restore from the last position.
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
    let options = [("number-of-rows", "5000"), ("iot.devices", "30")];
    let source = DatagenConnector.source(&table(all_fields(), &options))?;
    let metrics = Arc::new(OperatorMetrics::default());
    let fresh = |subtask, parallelism| -> Result<Box<dyn Source>> {
        let task = task(subtask, parallelism);
        let mut src = (source.factory)(&task)?;
        src.open(&task, &metrics)?;
        Ok(src)
    };
    let mut src = fresh(0, 3)?;
    poll_batches(src.as_mut(), 1)?;
    let good = src.snapshot_position()?;
    fresh(0, 3)?.restore_position(&good)?;

    let mut damaged: Vec<Vec<u8>> = vec![vec![], vec![2], good[..good.len() - 1].to_vec()];
    damaged.push([good.as_slice(), &[0]].concat());
    let mut wrong_version = good.clone();
    wrong_version[0] = 9;
    damaged.push(wrong_version);
    // Device index 10_000 of a subtask with 10 devices.
    let mut bad_index = good.clone();
    bad_index[9..17].copy_from_slice(&10_000u64.to_be_bytes());
    damaged.push(bad_index);
    for bytes in &damaged {
        match fresh(0, 3)?.restore_position(bytes) {
            Err(EngineError::Plan(msg)) => {
                assert!(msg.contains("datagen"), "{msg}")
            }
            Err(other) => panic!("expected a plan error, got {other}"),
            Ok(()) => panic!("position {bytes:?} must be rejected"),
        }
    }
    // Another parallelism gives the subtask other devices.
    match fresh(0, 2)?.restore_position(&good) {
        Err(EngineError::Plan(msg)) => assert!(msg.contains("parallelism"), "{msg}"),
        other => panic!("expected a plan error, got {other:?}"),
    }
    // And other options other rows.
    let other = DatagenConnector.source(&table(
        all_fields(),
        &[
            ("number-of-rows", "5000"),
            ("iot.devices", "30"),
            ("seed", "1"),
        ],
    ))?;
    let task = task(0, 3);
    let mut src = (other.factory)(&task)?;
    src.open(&task, &metrics)?;
    assert!(src.restore_position(&good).is_err());
    Ok(())
}

#[test]
fn pacing_restarts_after_a_restore_without_bursting_or_stalling() -> Result<()> {
    let t = table(all_fields(), &[("rows-per-second", "2000")]);
    let source = DatagenConnector.source(&t)?;
    let task = task(0, 1);
    let metrics = Arc::new(OperatorMetrics::default());
    let run = |src: &mut dyn Source, for_ms: u64| -> Result<(usize, f64)> {
        let started = Instant::now();
        let mut rows = 0;
        while started.elapsed() < Duration::from_millis(for_ms) {
            match src.poll()? {
                SourcePoll::Batch { batch, .. } => rows += batch.num_rows(),
                _ => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        Ok((rows, started.elapsed().as_secs_f64()))
    };
    let mut first = (source.factory)(&task)?;
    first.open(&task, &metrics)?;
    let (before, _) = run(first.as_mut(), 150)?;
    assert!(before > 0);
    let position = first.snapshot_position()?;
    drop(first);
    // The job is down for a while: the restored source must not send
    // the rows of that time at once.
    std::thread::sleep(Duration::from_millis(150));
    let mut second = (source.factory)(&task)?;
    second.open(&task, &metrics)?;
    second.restore_position(&position)?;
    let (after, secs) = run(second.as_mut(), 100)?;
    let limit = (secs * 2000.0) as usize + 1;
    assert!(after <= limit, "burst: {after} rows in {secs}s");
    assert!(after > 0, "pacing stalled after the restore");
    Ok(())
}

#[test]
fn datagen_cannot_be_written() {
    let t = table(all_fields(), &[]);
    assert!(matches!(
        DatagenConnector.sink(&t, false),
        Err(EngineError::Plan(_))
    ));
}
