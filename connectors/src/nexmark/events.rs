//! The Nexmark event model: which event number is a person, an auction or
//! a bid, and every value of an event as a hash of `(seed, n, field)`.

use super::NexmarkConfig;

/// Events per block: one person, three auctions, 46 bids.
pub(super) const BLOCK: u64 = 50;
pub(super) const PERSONS_PER_BLOCK: u64 = 1;
pub(super) const AUCTIONS_PER_BLOCK: u64 = 3;

/// The first person id and the first auction id, as in the reference.
pub(super) const FIRST_ID: u64 = 1000;

/// Hot ids are the newest id rounded down to a multiple of this.
pub(super) const HOT_STRIDE: u64 = 100;

pub(super) const FIRST_CATEGORY: i64 = 10;
pub(super) const CATEGORIES: u64 = 5;

// Salts separate the independent draws made for one event.
pub(super) const SALT_FIRST_NAME: u64 = 1;
pub(super) const SALT_LAST_NAME: u64 = 2;
pub(super) const SALT_EMAIL: u64 = 3;
pub(super) const SALT_CARD: u64 = 4;
pub(super) const SALT_PLACE: u64 = 5;
pub(super) const SALT_ITEM: u64 = 6;
pub(super) const SALT_DESCRIPTION: u64 = 7;
pub(super) const SALT_INITIAL: u64 = 8;
pub(super) const SALT_RESERVE: u64 = 9;
pub(super) const SALT_DURATION: u64 = 10;
pub(super) const SALT_SELLER_HOT: u64 = 11;
pub(super) const SALT_SELLER: u64 = 12;
pub(super) const SALT_CATEGORY: u64 = 13;
pub(super) const SALT_AUCTION_HOT: u64 = 14;
pub(super) const SALT_AUCTION: u64 = 15;
pub(super) const SALT_BIDDER_HOT: u64 = 16;
pub(super) const SALT_BIDDER: u64 = 17;
pub(super) const SALT_PRICE: u64 = 18;
pub(super) const SALT_CHANNEL: u64 = 19;
pub(super) const SALT_URL: u64 = 20;

/// SplitMix64's finalizer: a cheap, well-mixed 64-bit hash step.
pub(super) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The draw `salt` of event `n`.
pub(super) fn hash(seed: u64, n: u64, salt: u64) -> u64 {
    mix(mix(mix(seed) ^ salt) ^ n)
}

/// A uniform draw in `[0, 1)`.
pub(super) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// An element of a non-empty list.
pub(super) fn pick<T: Copy>(list: &[T], h: u64, fallback: T) -> T {
    list.get((h % list.len().max(1) as u64) as usize)
        .copied()
        .unwrap_or(fallback)
}

/// Persons that appeared before event `n`.
pub(super) fn persons_before(n: u64) -> u64 {
    let offset = n % BLOCK;
    n / BLOCK * PERSONS_PER_BLOCK + offset.min(PERSONS_PER_BLOCK)
}

/// Auctions that appeared before event `n`.
pub(super) fn auctions_before(n: u64) -> u64 {
    let offset = n % BLOCK;
    n / BLOCK * AUCTIONS_PER_BLOCK
        + offset
            .saturating_sub(PERSONS_PER_BLOCK)
            .min(AUCTIONS_PER_BLOCK)
}

/// Picks one of the `count` ids that exist (0-based): the hot one with
/// probability `hot_ratio`, else one of the newest `window`.
pub(super) fn choose_existing(
    count: u64,
    window: u64,
    hot_ratio: f64,
    hot_draw: u64,
    draw: u64,
) -> u64 {
    let newest = count.saturating_sub(1);
    if unit(hot_draw) < hot_ratio {
        newest / HOT_STRIDE * HOT_STRIDE
    } else {
        newest - draw % window.min(count).max(1)
    }
}

/// A price in cents: log-uniform between 1 and 10^6 dollars.
pub(super) fn price(h: u64) -> i64 {
    ((10f64.powf(unit(h) * 6.0) * 100.0).round() as i64).max(1)
}

pub(super) const FIRST_NAMES: [&str; 12] = [
    "Ada", "Bruno", "Chen", "Dara", "Emil", "Fatima", "Goran", "Hana", "Ivo", "Júlia", "Kenji",
    "Lena",
];
pub(super) const LAST_NAMES: [&str; 10] = [
    "Abbott", "Berg", "Castro", "Dietz", "Evans", "Fischer", "Garcia", "Hale", "Ito", "Jensen",
];
pub(super) const EMAIL_DOMAINS: [&str; 4] =
    ["example.com", "mail.test", "auction.test", "inbox.test"];
pub(super) const PLACES: [(&str, &str); 12] = [
    ("Phoenix", "AZ"),
    ("Tucson", "AZ"),
    ("Los Angeles", "CA"),
    ("San Francisco", "CA"),
    ("Boise", "ID"),
    ("Portland", "OR"),
    ("Bend", "OR"),
    ("Seattle", "WA"),
    ("Redmond", "WA"),
    ("Kent", "WA"),
    ("Cheyenne", "WY"),
    ("Casper", "WY"),
];
pub(super) const ADJECTIVES: [&str; 10] = [
    "antique", "vintage", "rare", "signed", "mint", "handmade", "restored", "boxed", "limited",
    "classic",
];
pub(super) const NOUNS: [&str; 10] = [
    "lamp", "clock", "guitar", "camera", "poster", "watch", "chair", "vase", "bicycle", "record",
];
pub(super) const CONDITIONS: [&str; 4] =
    ["like new", "lightly used", "for parts", "needs cleaning"];
pub(super) const NAMED_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

pub(super) struct Person {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) email: String,
    pub(super) credit_card: String,
    pub(super) city: &'static str,
    pub(super) state: &'static str,
}

pub(super) struct Auction {
    pub(super) id: i64,
    pub(super) item_name: String,
    pub(super) description: String,
    pub(super) initial_bid: i64,
    pub(super) reserve: i64,
    pub(super) expires: i64,
    pub(super) seller: i64,
    pub(super) category: i64,
}

pub(super) struct Bid {
    pub(super) auction: i64,
    pub(super) bidder: i64,
    pub(super) price: i64,
    pub(super) channel: String,
    pub(super) url: String,
}

pub(super) enum Body {
    Person(Person),
    Auction(Auction),
    Bid(Bid),
}

/// One generated event.
pub(super) struct Event {
    pub(super) time: i64,
    pub(super) body: Body,
}

/// Ids are far below `i64::MAX` for any stream that can be generated.
pub(super) fn id(base0: u64) -> i64 {
    i64::try_from(FIRST_ID.saturating_add(base0)).unwrap_or(i64::MAX)
}

pub(super) fn person(config: &NexmarkConfig, n: u64) -> Person {
    let h = |salt| hash(config.seed, n, salt);
    let first = pick(&FIRST_NAMES, h(SALT_FIRST_NAME), "Ada");
    let last = pick(&LAST_NAMES, h(SALT_LAST_NAME), "Abbott");
    let domain = pick(&EMAIL_DOMAINS, h(SALT_EMAIL), "example.com");
    let card = h(SALT_CARD);
    let (city, state) = pick(&PLACES, h(SALT_PLACE), ("Boise", "ID"));
    let base0 = persons_before(n);
    Person {
        id: id(base0),
        name: format!("{first} {last}"),
        email: format!(
            "{}.{}{}@{domain}",
            first.to_lowercase(),
            last.to_lowercase(),
            base0 % 1000
        ),
        credit_card: format!(
            "{:04} {:04} {:04} {:04}",
            card % 10_000,
            card / 10_000 % 10_000,
            card / 100_000_000 % 10_000,
            card / 1_000_000_000_000 % 10_000
        ),
        city,
        state,
    }
}

pub(super) fn auction(config: &NexmarkConfig, n: u64, time: i64) -> Auction {
    let h = |salt| hash(config.seed, n, salt);
    let item = h(SALT_ITEM);
    let adjective = pick(&ADJECTIVES, item, "rare");
    let noun = pick(&NOUNS, item / 16, "lamp");
    let condition = pick(&CONDITIONS, h(SALT_DESCRIPTION), "like new");
    let initial_bid = price(h(SALT_INITIAL));
    let d = config.auction_duration_ms;
    // At least 1 ms, so an auction is open for some time.
    let length = (d / 2 + h(SALT_DURATION) % d.max(1)).max(1);
    let seller = choose_existing(
        persons_before(n),
        config.active_people,
        config.hot_seller_ratio,
        h(SALT_SELLER_HOT),
        h(SALT_SELLER),
    );
    Auction {
        id: id(auctions_before(n)),
        item_name: format!("{adjective} {noun}"),
        description: format!("{adjective} {noun}, {condition}"),
        initial_bid,
        reserve: initial_bid.saturating_add(price(h(SALT_RESERVE))),
        expires: time.saturating_add(i64::try_from(length).unwrap_or(i64::MAX)),
        seller: id(seller),
        category: FIRST_CATEGORY + (h(SALT_CATEGORY) % CATEGORIES) as i64,
    }
}

pub(super) fn bid(config: &NexmarkConfig, n: u64) -> Bid {
    let h = |salt| hash(config.seed, n, salt);
    let auction = choose_existing(
        auctions_before(n),
        config.in_flight_auctions,
        config.hot_auction_ratio,
        h(SALT_AUCTION_HOT),
        h(SALT_AUCTION),
    );
    let bidder = choose_existing(
        persons_before(n),
        config.active_people,
        config.hot_bidder_ratio,
        h(SALT_BIDDER_HOT),
        h(SALT_BIDDER),
    );
    let c = h(SALT_CHANNEL);
    let path = pick(&NOUNS, h(SALT_URL), "lamp");
    let (channel, channel_id) = if c % 10 < 4 {
        let index = c / 10 % 4;
        (pick(&NAMED_CHANNELS, index, "Google").to_string(), index)
    } else {
        let k = c / 10 % 1000;
        (format!("channel-{k}"), 4 + k)
    };
    Bid {
        auction: id(auction),
        bidder: id(bidder),
        price: price(h(SALT_PRICE)),
        url: format!("https://www.nexmark.com/{path}/item.htm?query=1&channel_id={channel_id}"),
        channel,
    }
}

/// Event `n` of the stream.
pub(super) fn event(config: &NexmarkConfig, n: u64) -> Event {
    let time = config.event_time(n);
    let offset = n % BLOCK;
    let body = if offset < PERSONS_PER_BLOCK {
        Body::Person(person(config, n))
    } else if offset < PERSONS_PER_BLOCK + AUCTIONS_PER_BLOCK {
        Body::Auction(auction(config, n, time))
    } else {
        Body::Bid(bid(config, n))
    };
    Event { time, body }
}
