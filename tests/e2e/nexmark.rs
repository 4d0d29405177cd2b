//! The Nexmark query files run on the `nexmark` generator, with their
//! blackhole sinks replaced by JSON files whose rows are checked.

use std::path::{Path, PathBuf};

use runnel_flight::cli::{run_file, RunOptions};

const EVENTS: u64 = 50_000;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Runs `benches/nexmark/<query>.sql` with its sink writing JSON lines to a
/// temporary directory; returns the JSON lines it wrote.
fn run_query(query: &str) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!("runnel-nexmark-{query}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let source =
        std::fs::read_to_string(root().join("benches/nexmark/_source.sql")).expect("_source.sql");
    let body = std::fs::read_to_string(root().join(format!("benches/nexmark/{query}.sql")))
        .expect("query file");
    let sink = format!(
        "'connector' = 'filesystem', 'path' = '{}', 'format' = 'json'",
        dir.display()
    );
    let sql = source.replace("${EVENTS}", &EVENTS.to_string())
        + &body.replace("'connector' = 'blackhole'", &sink);
    assert!(
        sql.contains(&dir.display().to_string()),
        "{query}.sql has no blackhole sink to replace"
    );
    let script = dir.with_extension("sql");
    std::fs::write(&script, sql).expect("write script");
    run_file(
        &script.display().to_string(),
        &RunOptions {
            parallelism: Some(2),
            checkpoint_dir: None,
            ..Default::default()
        },
        false,
    )
    .unwrap_or_else(|e| panic!("{query}: {e}"));
    let mut rows = Vec::new();
    for e in std::fs::read_dir(&dir).expect("output dir").flatten() {
        if !e.file_name().to_string_lossy().starts_with('.') {
            let text = std::fs::read_to_string(e.path()).expect("output file");
            rows.extend(text.lines().map(str::to_string));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&script);
    rows
}

fn field(row: &str, name: &str) -> Option<i64> {
    let start = row.find(&format!("\"{name}\":"))? + name.len() + 3;
    let rest = &row[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[test]
fn q0_passes_every_bid_through() {
    // 46 of every 50 events are bids.
    assert_eq!(run_query("q0").len() as u64, EVENTS / 50 * 46);
}

#[test]
fn q2_selects_auctions_divisible_by_123() {
    let rows = run_query("q2");
    assert!(!rows.is_empty(), "some bids hit a selected auction");
    for r in &rows {
        let auction = field(r, "auction").expect("auction column");
        assert_eq!(auction % 123, 0, "{r}");
    }
}

#[test]
fn q11_sessions_count_every_bid_once() {
    let rows = run_query("q11");
    let total: i64 = rows
        .iter()
        .map(|r| field(r, "bid_count").expect("bid_count column"))
        .sum();
    assert_eq!(
        total as u64,
        EVENTS / 50 * 46,
        "every bid is in exactly one session"
    );
}

// ---------------------------------------------------------------------------
// q15-q17, q21, q22 against an oracle: every bid is collected once, the
// query's answer is computed from those bids in Rust, and the query's final
// rows (its changelog applied, through the Nexmark harness) must equal it.

mod oracle {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Duration;

    use runnel_benches::nexmark::{
        final_rows, run_query, run_script, Events, RunConfig, SOURCE_SQL,
    };
    use runnel_engine::testing::MemorySinkHandle;
    use serde_json::{json, Value};

    const EVENTS: u64 = 40_000;

    struct Bid {
        auction: i64,
        bidder: i64,
        price: i64,
        channel: String,
        url: String,
        /// `YYYY-MM-DDTHH:MM:SS.sss` as the harness writes it.
        date_time: String,
    }

    impl Bid {
        fn day(&self) -> &str {
            &self.date_time[..10]
        }
        fn rank(&self) -> usize {
            match self.price {
                p if p < 10_000 => 1,
                p if p < 1_000_000 => 2,
                _ => 3,
            }
        }
    }

    fn parse(line: &str) -> Vec<Value> {
        match serde_json::from_str(line) {
            Ok(Value::Array(v)) => v,
            other => panic!("not a JSON array: {line} ({other:?})"),
        }
    }

    fn bids() -> Vec<Bid> {
        let sql = SOURCE_SQL.replace("${EVENTS}", &EVENTS.to_string())
            + "\nSELECT auction, bidder, price, channel, url, date_time FROM bid;";
        let handle = MemorySinkHandle::new();
        run_script("bids", &sql, &[("parallelism", "2".into())], Some(&handle)).expect("bids");
        let rows = final_rows(&handle.batches()).expect("rows");
        assert_eq!(
            rows.len() as u64,
            EVENTS / 50 * 46,
            "46 of every 50 events are bids"
        );
        rows.iter()
            .map(|l| {
                let v = parse(l);
                let s = |i: usize| v[i].as_str().expect("a string").to_string();
                let n = |i: usize| v[i].as_i64().expect("a number");
                Bid {
                    auction: n(0),
                    bidder: n(1),
                    price: n(2),
                    channel: s(3),
                    url: s(4),
                    date_time: s(5),
                }
            })
            .collect()
    }

    /// The query's final rows, sorted, as JSON text.
    fn query(name: &str) -> Vec<String> {
        let dir = std::env::temp_dir().join(format!("runnel-oracle-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = RunConfig {
            events: Events::Generator(EVENTS),
            parallelism: 2,
            latency_interval: Duration::from_millis(100),
            output_dir: Some(dir.clone()),
            options: Vec::new(),
        };
        let result = run_query(name, &config).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(result.events, EVENTS);
        let text = std::fs::read_to_string(dir.join("result.json")).expect("result.json");
        let _ = std::fs::remove_dir_all(&dir);
        let mut rows: Vec<String> = text
            .lines()
            .map(|l| {
                parse(l)
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        rows.sort();
        rows
    }

    fn sorted(rows: Vec<Vec<Value>>) -> Vec<String> {
        let mut out: Vec<String> = rows
            .iter()
            .map(|r| r.iter().map(Value::to_string).collect::<Vec<_>>().join(","))
            .collect();
        out.sort();
        out
    }

    /// Counts, distinct bidders and distinct auctions, in total and per
    /// price rank, of a group of bids (the columns of q15 and q16).
    fn rank_stats(group: &[&Bid]) -> Vec<Value> {
        let mut out = vec![json!(group.len())];
        for r in 1..=3 {
            out.push(json!(group.iter().filter(|b| b.rank() == r).count()));
        }
        for key in [|b: &Bid| b.bidder, |b: &Bid| b.auction] {
            out.push(json!(group
                .iter()
                .map(|b| key(b))
                .collect::<BTreeSet<_>>()
                .len()));
            for r in 1..=3 {
                let distinct: BTreeSet<i64> = group
                    .iter()
                    .filter(|b| b.rank() == r)
                    .map(|b| key(b))
                    .collect();
                out.push(json!(distinct.len()));
            }
        }
        out
    }

    #[test]
    fn q15_q16_q17_q21_q22_equal_the_oracle() {
        let bids = bids();
        assert!(bids.iter().any(|b| b.rank() == 1) && bids.iter().any(|b| b.rank() == 3));

        let mut by_day: BTreeMap<&str, Vec<&Bid>> = BTreeMap::new();
        let mut by_channel_day: BTreeMap<(&str, &str), Vec<&Bid>> = BTreeMap::new();
        let mut by_auction_day: BTreeMap<(i64, &str), Vec<&Bid>> = BTreeMap::new();
        for b in &bids {
            by_day.entry(b.day()).or_default().push(b);
            by_channel_day
                .entry((&b.channel, b.day()))
                .or_default()
                .push(b);
            by_auction_day
                .entry((b.auction, b.day()))
                .or_default()
                .push(b);
        }

        let q15: Vec<Vec<Value>> = by_day
            .iter()
            .map(|(day, g)| [vec![json!(day)], rank_stats(g)].concat())
            .collect();
        assert_eq!(query("q15"), sorted(q15), "q15");

        let q16: Vec<Vec<Value>> = by_channel_day
            .iter()
            .map(|((channel, day), g)| {
                let minute = g.iter().map(|b| &b.date_time[11..16]).max().expect("a bid");
                [
                    vec![json!(channel), json!(day), json!(minute)],
                    rank_stats(g),
                ]
                .concat()
            })
            .collect();
        assert_eq!(query("q16"), sorted(q16), "q16");

        let q17: Vec<Vec<Value>> = by_auction_day
            .iter()
            .map(|((auction, day), g)| {
                let prices: Vec<i64> = g.iter().map(|b| b.price).collect();
                let sum: i64 = prices.iter().sum();
                let mut row = vec![json!(auction), json!(day), json!(g.len())];
                for r in 1..=3 {
                    row.push(json!(g.iter().filter(|b| b.rank() == r).count()));
                }
                row.push(json!(prices.iter().min()));
                row.push(json!(prices.iter().max()));
                row.push(json!(sum / prices.len() as i64));
                row.push(json!(sum));
                row
            })
            .collect();
        assert_eq!(query("q17"), sorted(q17), "q17");

        let q21: Vec<Vec<Value>> = bids
            .iter()
            .filter_map(|b| {
                let from_url = b
                    .url
                    .split(['?', '&'])
                    .find_map(|kv| kv.strip_prefix("channel_id="))
                    .map(str::to_string);
                let known = ["apple", "google", "facebook", "baidu"]
                    .iter()
                    .position(|c| b.channel.to_lowercase() == *c);
                let id = match known {
                    Some(i) => Some(i.to_string()),
                    None => from_url,
                }?;
                Some(vec![
                    json!(b.auction),
                    json!(b.bidder),
                    json!(b.price),
                    json!(b.channel),
                    json!(id),
                ])
            })
            .collect();
        assert!(!q21.is_empty());
        assert_eq!(query("q21"), sorted(q21), "q21");

        let q22: Vec<Vec<Value>> = bids
            .iter()
            .map(|b| {
                let parts: Vec<&str> = b.url.split('/').collect();
                let dir = |i: usize| parts.get(i).map_or(Value::Null, |p| json!(p));
                vec![
                    json!(b.auction),
                    json!(b.bidder),
                    json!(b.price),
                    json!(b.channel),
                    dir(3),
                    dir(4),
                    dir(5),
                ]
            })
            .collect();
        assert_eq!(query("q22"), sorted(q22), "q22");
    }

    /// q12 and q13 run in processing time: which 10 s window a bid falls in
    /// depends on when it was read, but every bid is counted once (q12),
    /// and every bid meets the side input's row for its auction (q13).
    #[test]
    fn q12_q13_processing_time_equal_the_oracle() {
        let bids = bids();
        let mut per_bidder: BTreeMap<i64, i64> = BTreeMap::new();
        for b in &bids {
            *per_bidder.entry(b.bidder).or_default() += 1;
        }
        let started = chrono::Utc::now().timestamp_millis();
        let q12 = query("q12");
        let finished = chrono::Utc::now().timestamp_millis();
        let mut counted: BTreeMap<i64, i64> = BTreeMap::new();
        let mut windows = BTreeSet::new();
        for row in &q12 {
            let v = parse(&format!("[{row}]"));
            let (start, end) = (
                millis_any(v[2].as_str().expect("start")),
                millis_any(v[3].as_str().expect("end")),
            );
            assert_eq!(end - start, 10_000, "{row}");
            assert_eq!(start % 10_000, 0, "{row}");
            // Windows of the wall-clock time the query ran in, not of the
            // events' times (2015 and on).
            assert!(
                end > started && start <= finished,
                "{row} outside {started}..{finished}"
            );
            assert!(windows.insert((v[0].as_i64(), start)), "{row} twice");
            *counted.entry(v[0].as_i64().expect("bidder")).or_default() +=
                v[1].as_i64().expect("count");
        }
        assert_eq!(counted, per_bidder, "q12: bids per bidder over all windows");

        let q13: Vec<Vec<Value>> = bids
            .iter()
            .map(|b| {
                vec![
                    json!(b.auction),
                    json!(b.bidder),
                    json!(b.price),
                    json!(b.date_time),
                    json!((b.auction % 10_000).to_string()),
                ]
            })
            .collect();
        assert_eq!(query("q13"), sorted(q13), "q13");
    }

    /// q14: bids priced between 1,000,000 and 50,000,000 euros (0.908 per
    /// dollar), with the class of their hour and the c's in their url
    /// counted by a SQL function.
    #[test]
    fn q14_sql_function_equals_the_oracle() {
        let bids = bids();
        let q14: Vec<Vec<Value>> = bids
            .iter()
            .filter(|b| {
                let euros = 0.908 * b.price as f64;
                euros > 1_000_000.0 && euros < 50_000_000.0
            })
            .map(|b| {
                let hour: u32 = b.date_time[11..13].parse().expect("an hour");
                let class = match hour {
                    8..=18 => "dayTime",
                    h if h <= 6 || h >= 20 => "nightTime",
                    _ => "otherTime",
                };
                vec![
                    json!(b.auction),
                    json!(b.bidder),
                    // Exact to the sink's DECIMAL(23, 3).
                    json!(format!(
                        "{}.{:03}",
                        b.price * 908 / 1000,
                        b.price * 908 % 1000
                    )),
                    json!(class),
                    json!(b.date_time),
                    json!(b.url),
                    json!(b.url.matches('c').count()),
                ]
            })
            .collect();
        assert!(q14.len() > 10, "the price filter keeps some bids");
        assert!(
            q14.iter().any(|r| r[6] != json!(0)),
            "some urls have a c to count"
        );
        // The price column written with three decimals, as the expected
        // rows have it.
        let mut got: Vec<String> = query("q14")
            .iter()
            .map(|row| {
                let mut cells: Vec<String> = row.splitn(4, ',').map(str::to_string).collect();
                let price: f64 = cells[2].parse().expect("a price");
                cells[2] = json!(format!("{price:.3}")).to_string();
                cells.join(",")
            })
            .collect();
        got.sort();
        assert_eq!(got, sorted(q14), "q14");
    }

    /// q10: every bid with its day and minute; the query as the harness
    /// runs it writes them into partition directories (and removes them).
    #[test]
    fn q10_partitioned_files_equal_the_oracle() {
        let bids = bids();
        let q10: Vec<Vec<Value>> = bids
            .iter()
            .map(|b| {
                vec![
                    json!(b.auction),
                    json!(b.bidder),
                    json!(b.price),
                    json!(b.date_time),
                    json!(&b.date_time[..10]),
                    json!(&b.date_time[11..16]),
                ]
            })
            .collect();
        assert_eq!(query("q10"), sorted(q10), "q10");
        let config = RunConfig {
            events: Events::Generator(EVENTS),
            parallelism: 2,
            latency_interval: Duration::from_millis(100),
            output_dir: None,
            options: Vec::new(),
        };
        let result = run_query("q10", &config).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(result.events, EVENTS);
        assert_eq!(result.rows_out, bids.len() as u64, "every bid written");
    }

    /// Epoch milliseconds of a time with or without a fraction.
    fn millis_any(t: &str) -> i64 {
        if t.contains('.') {
            millis(t)
        } else {
            millis(&format!("{t}.000"))
        }
    }

    /// Epoch milliseconds of a `YYYY-MM-DDTHH:MM:SS.sss` time.
    fn millis(t: &str) -> i64 {
        chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.3f")
            .unwrap_or_else(|e| panic!("{t}: {e}"))
            .and_utc()
            .timestamp_millis()
    }

    /// A window start as the harness writes times: no fraction when the
    /// milliseconds are zero (window starts are whole 10 s).
    fn time_text(ms: i64) -> String {
        assert_eq!(ms % 1000, 0);
        chrono::DateTime::from_timestamp_millis(ms)
            .expect("a valid time")
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    }

    /// Rows of a bounded query over the generated events.
    fn rows_of(select: &str) -> Vec<Vec<Value>> {
        let sql = SOURCE_SQL.replace("${EVENTS}", &EVENTS.to_string()) + "\n" + select;
        let handle = MemorySinkHandle::new();
        run_script("rows", &sql, &[("parallelism", "2".into())], Some(&handle)).expect(select);
        final_rows(&handle.batches())
            .expect("rows")
            .iter()
            .map(|l| parse(l))
            .collect()
    }

    #[test]
    fn q5_q7_q8_window_joins_equal_the_oracle() {
        let bids = bids();
        // q5: bids per auction in 10 s windows every 2 s; per window, the
        // auctions whose count is the window's largest.
        let mut counts: BTreeMap<(i64, i64), i64> = BTreeMap::new();
        for b in &bids {
            let t = millis(&b.date_time);
            let mut start = t.div_euclid(2_000) * 2_000;
            while start > t - 10_000 {
                *counts.entry((start, b.auction)).or_default() += 1;
                start -= 2_000;
            }
        }
        let mut max_per_window: BTreeMap<i64, i64> = BTreeMap::new();
        for (&(start, _), &n) in &counts {
            let m = max_per_window.entry(start).or_default();
            *m = (*m).max(n);
        }
        let q5: Vec<Vec<Value>> = counts
            .iter()
            .filter(|((start, _), n)| **n >= max_per_window[start])
            .map(|((_, auction), n)| vec![json!(auction), json!(n)])
            .collect();
        assert!(max_per_window.len() > 1, "several windows");
        assert_eq!(query("q5"), sorted(q5), "q5");

        // q7: the bids with the highest price of their 10 s window.
        let window = |b: &Bid| millis(&b.date_time).div_euclid(10_000);
        let mut top: BTreeMap<i64, i64> = BTreeMap::new();
        for b in &bids {
            let m = top.entry(window(b)).or_insert(i64::MIN);
            *m = (*m).max(b.price);
        }
        let q7: Vec<Vec<Value>> = bids
            .iter()
            .filter(|b| b.price == top[&window(b)])
            .map(|b| {
                vec![
                    json!(b.auction),
                    json!(b.price),
                    json!(b.bidder),
                    json!(b.date_time),
                ]
            })
            .collect();
        assert_eq!(query("q7"), sorted(q7), "q7");

        // q8: people who opened an auction in the 10 s window they joined in.
        let persons = rows_of("SELECT id, name, date_time FROM person;");
        let sellers: BTreeSet<(i64, i64)> = rows_of("SELECT seller, date_time FROM auction;")
            .iter()
            .map(|r| {
                let t = millis(r[1].as_str().expect("a time"));
                (r[0].as_i64().expect("a seller"), t.div_euclid(10_000))
            })
            .collect();
        let q8: BTreeSet<(i64, String, i64)> = persons
            .iter()
            .filter_map(|r| {
                let id = r[0].as_i64().expect("an id");
                let w = millis(r[2].as_str().expect("a time")).div_euclid(10_000);
                sellers
                    .contains(&(id, w))
                    .then(|| (id, r[1].as_str().expect("a name").to_string(), w * 10_000))
            })
            .collect();
        assert!(!q8.is_empty(), "some people sell in their first window");
        let q8: Vec<Vec<Value>> = q8
            .into_iter()
            .map(|(id, name, start)| vec![json!(id), json!(name), json!(time_text(start))])
            .collect();
        assert_eq!(query("q8"), sorted(q8), "q8");
    }

    /// q4 (a comma join of auctions and bids, the highest bid while each
    /// auction was open, averaged per category): the final rows of its
    /// updating output.
    #[test]
    fn q4_comma_join_and_aggregates_over_updates_equal_the_oracle() {
        let auctions = rows_of("SELECT id, category, date_time, expires FROM auction;");
        let bids = bids();
        let mut finals: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for a in &auctions {
            let id = a[0].as_i64().expect("an id");
            let from = millis(a[2].as_str().expect("a time"));
            let to = millis(a[3].as_str().expect("a time"));
            let top = bids
                .iter()
                .filter(|b| b.auction == id)
                .filter(|b| (from..=to).contains(&millis(&b.date_time)))
                .map(|b| b.price)
                .max();
            if let Some(top) = top {
                finals
                    .entry(a[1].as_i64().expect("a category"))
                    .or_default()
                    .push(top);
            }
        }
        assert!(finals.len() > 1, "several categories have bids");
        let q4: Vec<Vec<Value>> = finals
            .iter()
            .map(|(category, prices)| {
                // AVG of BIGINT is a BIGINT (truncated), as in Flink.
                let avg = prices.iter().sum::<i64>() / prices.len() as i64;
                vec![json!(category), json!(avg)]
            })
            .collect();
        let got: Vec<Vec<Value>> = sorted_rows(
            query("q4")
                .iter()
                .map(|l| parse(&format!("[{l}]")))
                .collect(),
        );
        assert_eq!(got, sorted_rows(q4), "q4: one row per category");
    }

    /// q6 (each seller's auctions in the order they close, the average
    /// final price of each one and the ten before it): an OVER aggregation
    /// over the updating maximum of a comma join, its final rows.
    #[test]
    fn q6_over_an_updating_input_equals_the_oracle() {
        let auctions = rows_of("SELECT id, seller, date_time, expires FROM auction;");
        let bids = bids();
        // seller -> (expires, id, final price)
        let mut sold: BTreeMap<i64, Vec<(i64, i64, i64)>> = BTreeMap::new();
        for a in &auctions {
            let id = a[0].as_i64().expect("an id");
            let from = millis(a[2].as_str().expect("a time"));
            let to = millis(a[3].as_str().expect("a time"));
            let top = bids
                .iter()
                .filter(|b| b.auction == id && (from..=to).contains(&millis(&b.date_time)))
                .map(|b| b.price)
                .max();
            if let Some(top) = top {
                sold.entry(a[1].as_i64().expect("a seller"))
                    .or_default()
                    .push((to, id, top));
            }
        }
        let mut q6: Vec<Vec<Value>> = Vec::new();
        for (seller, auctions) in &mut sold {
            auctions.sort();
            for i in 0..auctions.len() {
                let frame = &auctions[i.saturating_sub(10)..=i];
                // AVG of BIGINT is a BIGINT (truncated), as in Flink.
                let avg = frame.iter().map(|a| a.2).sum::<i64>() / frame.len() as i64;
                q6.push(vec![json!(seller), json!(avg)]);
            }
        }
        assert!(
            sold.values().any(|a| a.len() > 11),
            "some seller has more than 11 auctions with bids: frames slide"
        );
        let (got, want) = (query("q6"), sorted(q6));
        let missing: Vec<&String> = want.iter().filter(|r| !got.contains(r)).take(5).collect();
        let extra: Vec<&String> = got.iter().filter(|r| !want.contains(r)).take(5).collect();
        assert!(
            got == want,
            "q6: {} rows, {} expected (one per auction with bids); missing {missing:?}, extra {extra:?}",
            got.len(),
            want.len()
        );
    }

    /// q19 (the ten highest bids of each auction, with their rank) and
    /// q18 (each bidder's last bid on each auction): Top-N and
    /// deduplication, the final rows of their updating output.
    #[test]
    fn q18_q19_top_n_and_deduplication_equal_the_oracle() {
        let bids = bids();
        // q19: per auction, the prices of ranks 1..=n are the n highest
        // prices, in order (equal prices may swap their bids).
        let mut by_auction: BTreeMap<i64, Vec<&Bid>> = BTreeMap::new();
        for b in &bids {
            by_auction.entry(b.auction).or_default().push(b);
        }
        let got: Vec<Vec<Value>> = query("q19")
            .iter()
            .map(|l| parse(&format!("[{l}]")))
            .collect();
        let mut got_by_auction: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
        for r in &got {
            got_by_auction
                .entry(r[0].as_i64().expect("an auction"))
                .or_default()
                .push((
                    r[6].as_i64().expect("a rank"),
                    r[2].as_i64().expect("a price"),
                ));
        }
        assert_eq!(
            got_by_auction.keys().collect::<Vec<_>>(),
            by_auction.keys().collect::<Vec<_>>(),
            "every auction with bids"
        );
        for (auction, bids) in &by_auction {
            let mut prices: Vec<i64> = bids.iter().map(|b| b.price).collect();
            prices.sort_unstable_by(|a, b| b.cmp(a));
            prices.truncate(10);
            let mut ranked = got_by_auction[auction].clone();
            ranked.sort_unstable();
            let ranks: Vec<i64> = ranked.iter().map(|r| r.0).collect();
            assert_eq!(
                ranks,
                (1..=prices.len() as i64).collect::<Vec<_>>(),
                "{auction}"
            );
            let got_prices: Vec<i64> = ranked.iter().map(|r| r.1).collect();
            assert_eq!(got_prices, prices, "auction {auction}");
        }
        assert!(
            by_auction.values().any(|b| b.len() > 10),
            "some auctions have more than ten bids"
        );

        // q18: per (bidder, auction), a bid with the latest time. Several
        // bids of one key can share a millisecond; which of them is last
        // depends on arrival (Flink keeps the last to arrive), so the
        // row must be one of them.
        let row = |b: &Bid| {
            vec![
                json!(b.auction),
                json!(b.bidder),
                json!(b.price),
                json!(b.channel),
                json!(b.url),
                json!(b.date_time),
            ]
        };
        let mut last: BTreeMap<(i64, i64), (i64, BTreeSet<String>)> = BTreeMap::new();
        for b in &bids {
            let t = millis(&b.date_time);
            let e = last
                .entry((b.bidder, b.auction))
                .or_insert((t, BTreeSet::new()));
            if t > e.0 {
                *e = (t, BTreeSet::new());
            }
            if t == e.0 {
                e.1.extend(sorted(vec![row(b)]));
            }
        }
        let got = query("q18");
        assert!(
            got.len() < bids.len(),
            "some bidders bid twice on an auction"
        );
        assert_eq!(got.len(), last.len(), "one row per bidder and auction");
        for g in &got {
            let v = parse(&format!("[{g}]"));
            let key = (
                v[1].as_i64().expect("a bidder"),
                v[0].as_i64().expect("an auction"),
            );
            assert!(
                last[&key].1.contains(g),
                "q18: {g} is not a last bid of {key:?}"
            );
        }
    }

    /// q9 (each auction's highest bid while it was open, earliest first on
    /// equal prices): a Top-1 over a comma join.
    #[test]
    fn q9_winning_bids_equal_the_oracle() {
        let auctions = rows_of(
            "SELECT id, item_name, description, initial_bid, reserve, date_time, expires, seller, category FROM auction;",
        );
        let bids = bids();
        let mut q9 = Vec::new();
        for a in &auctions {
            let id = a[0].as_i64().expect("an id");
            let from = millis(a[5].as_str().expect("a time"));
            let to = millis(a[6].as_str().expect("a time"));
            let best = bids
                .iter()
                .filter(|b| b.auction == id && (from..=to).contains(&millis(&b.date_time)))
                .max_by(|x, y| {
                    x.price
                        .cmp(&y.price)
                        .then(millis(&y.date_time).cmp(&millis(&x.date_time)))
                });
            if let Some(b) = best {
                let mut row = a.clone();
                row.extend([
                    json!(b.auction),
                    json!(b.bidder),
                    json!(b.price),
                    json!(b.date_time),
                ]);
                q9.push(row);
            }
        }
        assert!(q9.len() > 10, "many auctions have a winning bid");
        assert_eq!(query("q9"), sorted(q9), "q9");
    }

    fn sorted_rows(mut rows: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
        rows.sort_by_key(|r| r[0].as_i64());
        rows
    }

    #[test]
    fn q3_q20_regular_joins_equal_the_oracle() {
        // q3: auctions of category 10 by sellers in OR, ID or CA.
        let persons: BTreeMap<i64, Vec<Value>> =
            rows_of("SELECT id, name, city, state FROM person;")
                .into_iter()
                .map(|r| (r[0].as_i64().expect("an id"), r))
                .collect();
        let auctions = rows_of(
            "SELECT id, item_name, description, initial_bid, reserve, date_time, expires, seller, category FROM auction;",
        );
        let in_category = |a: &Vec<Value>| a[8].as_i64() == Some(10);
        let q3: Vec<Vec<Value>> = auctions
            .iter()
            .filter(|a| in_category(a))
            .filter_map(|a| {
                let p = persons.get(&a[7].as_i64().expect("a seller"))?;
                ["OR", "ID", "CA"]
                    .contains(&p[3].as_str().expect("a state"))
                    .then(|| vec![p[1].clone(), p[2].clone(), p[3].clone(), a[0].clone()])
            })
            .collect();
        assert!(!q3.is_empty(), "some sellers are in those states");
        assert_eq!(query("q3"), sorted(q3), "q3");

        // q20: bids on auctions of category 10, with the auction's columns.
        let by_id: BTreeMap<i64, &Vec<Value>> = auctions
            .iter()
            .filter(|a| in_category(a))
            .map(|a| (a[0].as_i64().expect("an id"), a))
            .collect();
        let q20: Vec<Vec<Value>> = bids()
            .iter()
            .filter_map(|b| {
                let a = by_id.get(&b.auction)?;
                let mut row = vec![
                    json!(b.auction),
                    json!(b.bidder),
                    json!(b.price),
                    json!(b.channel),
                    json!(b.url),
                    json!(b.date_time),
                ];
                row.extend(a[1..].iter().cloned());
                Some(row)
            })
            .collect();
        assert!(!q20.is_empty(), "some bids are on category 10");
        assert_eq!(query("q20"), sorted(q20), "q20");
    }
}
