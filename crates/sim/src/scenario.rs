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
        prob("clubbers", self.clubbers)?;
        prob("interview_forget_rate", self.interview_forget_rate)?;
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
