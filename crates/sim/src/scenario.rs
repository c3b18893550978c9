//! The parameters of a simulation: a TOML scenario file, every key
//! optional, defaults documented here and in the crate's README.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Telcos and their market shares (subscribers), in file-name form.
    pub telcos: Vec<(String, f64)>,
    /// Number of card companies; their shares follow Zipf's law with
    /// exponent `card_skew` (a few large issuers, many small ones).
    pub card_companies: usize,
    pub card_skew: f64,
    /// Minutes between two pings of one phone: uniform in this range.
    pub ping_interval_minutes: (u32, u32),
    /// Chance a ping lands on the second-nearest tower (handover, load).
    pub handover_noise: f64,
    /// Share of people who take the subway for trips over 1.5 km.
    pub transit_share: f64,
    /// Share of people who go to a church service on Sundays.
    pub churchgoers: f64,
    /// Share of churchgoers at the Wednesday evening service, each week.
    pub midweek_service: f64,
    /// Share of 19–35-year-olds who go clubbing on Friday/Saturday nights.
    pub clubbers: f64,
    /// Transmission: the chance per hour that an infectious person infects
    /// one other person present at the same venue, by venue kind
    /// (`1 - exp(-rate * hours)` for each pair).
    pub transmission_per_hour: Vec<(String, f64)>,
    /// Incubation period in days (log-normal).
    pub incubation_mean_days: f64,
    pub incubation_sd_days: f64,
    /// Infectious from this many days before symptom onset.
    pub presymptomatic_days: f64,
    /// Days from onset to confirmation: uniform in this range.
    pub detection_delay_days: (u32, u32),
    /// The venue kinds where the outbreak starts, one index case each.
    pub seed_venues: Vec<String>,
    /// The interview: chance a visit is forgotten, and how far times drift.
    pub interview_forget_rate: f64,
    pub interview_shift_minutes: u32,
    /// Care once ill: the chance, each day from onset to confirmation,
    /// of a visit to the nearest clinic (hospital) or pharmacy …
    pub care_visit_chance: f64,
    /// … and the chance the test (the day before confirmation) is taken
    /// at the district's public health centre rather than the clinic.
    pub tested_at_health_centre: f64,
    /// What the health authority publishes of the cases: `[published]`.
    pub published: Published,
}

/// The published view of the cases (`published-routes.csv`,
/// `published-register.csv`): what health authorities put online in
/// 2020 — a few visits per case, a date and no time, the venue's point
/// and category, onset often missing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Published {
    /// Routes are published from this many days before onset (at most 2:
    /// the interview's window) to confirmation.
    pub lookback_days: u32,
    /// Share of cases whose route is not published at all.
    pub no_route_share: f64,
    /// Share of cases registered with their confirmation date only.
    pub onset_missing_share: f64,
    /// The chance a visit (one venue on one day, from two days before
    /// onset to confirmation) is published: before onset …
    pub keep_before_onset: f64,
    /// … from onset on …
    pub keep_after_onset: f64,
    /// … and a visit for care (clinic, pharmacy, health centre) from onset on.
    pub keep_care: f64,
    /// Share of published rows with start and end times (most have none).
    pub timed_share: f64,
}

impl Default for Published {
    fn default() -> Self {
        Self {
            lookback_days: 2,
            no_route_share: 0.15,
            onset_missing_share: 0.7,
            keep_before_onset: 0.2,
            keep_after_onset: 0.35,
            keep_care: 0.9,
            timed_share: 0.0,
        }
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            telcos: vec![
                ("skt".into(), 0.40),
                ("kt".into(), 0.30),
                ("lguplus".into(), 0.30),
            ],
            card_companies: 22,
            card_skew: 1.1,
            ping_interval_minutes: (10, 30),
            handover_noise: 0.10,
            transit_share: 0.65,
            churchgoers: 0.15,
            midweek_service: 0.4,
            clubbers: 0.25,
            // Per pair of people per hour together: calibrated so that an
            // infectious person infects about 0.05 household members a day,
            // ~10 at a church service, a few at a club night, and a
            // call-centre floor or a church becomes a super-spreading site.
            transmission_per_hour: vec![
                ("home".into(), 0.004),
                ("office".into(), 0.001),
                ("call_centre".into(), 0.006),
                ("school".into(), 0.0001),
                ("church".into(), 0.03),
                ("club".into(), 0.04),
                ("hospital".into(), 0.0005),
                ("restaurant".into(), 0.01),
                ("cafe".into(), 0.008),
                ("shop".into(), 0.002),
                ("pharmacy".into(), 0.002),
                ("health_centre".into(), 0.001),
            ],
            incubation_mean_days: 5.2,
            incubation_sd_days: 2.8,
            presymptomatic_days: 2.0,
            detection_delay_days: (1, 5),
            seed_venues: vec![
                "church".into(),
                "call_centre".into(),
                "club".into(),
                "hospital".into(),
            ],
            interview_forget_rate: 0.2,
            interview_shift_minutes: 30,
            care_visit_chance: 0.5,
            tested_at_health_centre: 0.8,
            published: Published::default(),
        }
    }
}

impl Scenario {
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| format!("scenario: {}", e.message()))?;
        s.check()?;
        Ok(s)
    }

    pub fn check(&self) -> Result<(), String> {
        let prob = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("scenario: {name} must be between 0 and 1"))
            }
        };
        prob("handover_noise", self.handover_noise)?;
        prob("transit_share", self.transit_share)?;
        prob("churchgoers", self.churchgoers)?;
        prob("midweek_service", self.midweek_service)?;
        prob("clubbers", self.clubbers)?;
        prob("interview_forget_rate", self.interview_forget_rate)?;
        prob("care_visit_chance", self.care_visit_chance)?;
        prob("tested_at_health_centre", self.tested_at_health_centre)?;
        let p = &self.published;
        if p.lookback_days > 2 {
            return Err("scenario: published.lookback_days must be 0-2".into());
        }
        for (name, v) in [
            ("published.no_route_share", p.no_route_share),
            ("published.onset_missing_share", p.onset_missing_share),
            ("published.keep_before_onset", p.keep_before_onset),
            ("published.keep_after_onset", p.keep_after_onset),
            ("published.keep_care", p.keep_care),
            ("published.timed_share", p.timed_share),
        ] {
            prob(name, v)?;
        }
        if self.telcos.is_empty() || self.telcos.iter().any(|(n, s)| *s <= 0.0 || !valid_name(n)) {
            return Err(
                "scenario: telcos need names of a-z, 0-9 and '-' and positive shares".into(),
            );
        }
        if !(1..=100).contains(&self.card_companies) {
            return Err("scenario: card_companies must be 1-100".into());
        }
        let (lo, hi) = self.ping_interval_minutes;
        if lo == 0 || hi < lo {
            return Err(
                "scenario: ping_interval_minutes must be (low, high) with 0 < low <= high".into(),
            );
        }
        let (lo, hi) = self.detection_delay_days;
        if hi < lo {
            return Err("scenario: detection_delay_days must be (low, high)".into());
        }
        if self.incubation_mean_days <= 0.0 || self.incubation_sd_days <= 0.0 {
            return Err("scenario: incubation days must be positive".into());
        }
        Ok(())
    }

    pub fn transmission(&self, kind: &str) -> f64 {
        self.transmission_per_hour
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(0.0, |(_, r)| *r)
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The 22 card companies' file names, largest first.
pub const CARD_COMPANIES: [&str; 22] = [
    "shinhan",
    "kb",
    "samsung",
    "hyundai",
    "lotte",
    "woori",
    "hana",
    "bc",
    "nh",
    "ibk",
    "citi",
    "kakaobank",
    "toss",
    "suhyup",
    "jeonbuk",
    "gwangju",
    "jeju",
    "kyongnam",
    "busan",
    "daegu",
    "sc",
    "post",
];

/// The districts of the default city, on a 5 × 5 grid from south-west.
pub const DISTRICTS: [&str; 25] = [
    "gangseo",
    "yangcheon",
    "guro",
    "geumcheon",
    "gwanak",
    "mapo",
    "yeongdeungpo",
    "dongjak",
    "seocho",
    "gangnam",
    "eunpyeong",
    "seodaemun",
    "yongsan",
    "songpa",
    "gangdong",
    "dobong",
    "jongno",
    "jung",
    "seongdong",
    "gwangjin",
    "nowon",
    "gangbuk",
    "seongbuk",
    "dongdaemun",
    "jungnang",
];
