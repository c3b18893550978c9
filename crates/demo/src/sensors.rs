//! The demo city's sensors: they publish over MQTT what the synthetic
//! city does, in a time-lapse (ten minutes of the city every five
//! seconds), so that City data fills as a user watches.
//!
//! - subway stations (`city/subway/{stop}/flow`): the people who tapped
//!   in and out there in the window, from the city's transit taps;
//! - traffic per district (`city/traffic/{district}/flow`): intensity,
//!   speed and occupancy from the trips started in the district;
//! - air quality per district (`city/air/{district}/reading`): a daily
//!   cycle and the district's traffic;
//! - the weather (`city/weather/seoul/observation`), parking spots by
//!   the city's venues (`city/parking/{venue}/status`) and streetlights
//!   per district (`city/streetlight/{district}/state`).
//!
//! The mapping that turns them into entities is
//! `crates/citydata/mappings/demo-city.toml`, written into the demo's
//! data directory.

use civic_citydata::geo::Geometry;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// The mapping file of the demo's topics.
pub const MAPPINGS: &str = include_str!("../../citydata/mappings/demo-city.toml");

const WINDOW_SECONDS: i64 = 600;
const TICK: Duration = Duration::from_secs(5);

struct Stop {
    id: String,
    lat: f64,
    lon: f64,
    name: String,
    district: Option<usize>,
}

struct District {
    name: String,
    lat: f64,
    lon: f64,
    shape: Geometry,
}

struct Venue {
    id: String,
    lat: f64,
    lon: f64,
}

/// The city as the sensors see it.
pub struct City {
    stops: Vec<Stop>,
    districts: Vec<District>,
    venues: Vec<Venue>,
    /// Per window since the first: (stop index, in?) of each tap.
    windows: Vec<Vec<(usize, bool)>>,
    start: i64,
}

fn csv_rows(path: &Path) -> std::io::Result<Vec<Vec<String>>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect())
}

fn bad(path: &Path, what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

impl City {
    /// Reads the synthetic city's stops, taps, venues and districts.
    pub fn load(city: &Path) -> std::io::Result<City> {
        let geo_path = city.join("geography.geojson");
        let geo: Value = serde_json::from_str(&std::fs::read_to_string(&geo_path)?)
            .map_err(|_| bad(&geo_path, "not JSON"))?;
        let mut districts = Vec::new();
        for f in geo["features"]
            .as_array()
            .ok_or_else(|| bad(&geo_path, "no features"))?
        {
            if f["properties"]["layer"] != "region" {
                continue;
            }
            let Some(shape) = Geometry::from_geojson(&f["geometry"]) else {
                continue;
            };
            let ((x0, y0), (x1, y1)) = shape.bbox();
            districts.push(District {
                name: f["properties"]["name"]
                    .as_str()
                    .unwrap_or("district")
                    .to_owned(),
                lat: (y0 + y1) / 2.0,
                lon: (x0 + x1) / 2.0,
                shape,
            });
        }
        let stops_path = city.join("stops.csv");
        let mut stops = Vec::new();
        for r in csv_rows(&stops_path)? {
            if r.len() < 4 {
                return Err(bad(&stops_path, "a row has fewer than 4 columns"));
            }
            let (lat, lon): (f64, f64) = (
                r[1].parse().map_err(|_| bad(&stops_path, "a latitude"))?,
                r[2].parse().map_err(|_| bad(&stops_path, "a longitude"))?,
            );
            let here = Geometry::Point((lon, lat));
            let district = districts.iter().position(|d| here.within(&d.shape));
            stops.push(Stop {
                id: r[0].clone(),
                lat,
                lon,
                name: r[3].clone(),
                district,
            });
        }
        let index: HashMap<&str, usize> = stops
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let taps_path = city.join("taps.csv");
        let mut taps: Vec<(i64, usize, bool)> = Vec::new();
        for r in csv_rows(&taps_path)? {
            if r.len() < 4 {
                continue;
            }
            let (Ok(ts), Some(stop)) = (r[1].parse::<i64>(), index.get(r[2].as_str())) else {
                continue;
            };
            taps.push((ts, *stop, r[3] == "in"));
        }
        taps.sort_by_key(|t| t.0);
        let start = taps
            .first()
            .map(|t| t.0 - t.0.rem_euclid(3600))
            .unwrap_or(1_583_020_800);
        let mut windows: Vec<Vec<(usize, bool)>> = Vec::new();
        for (ts, stop, inward) in taps {
            let w = ((ts - start) / WINDOW_SECONDS) as usize;
            if windows.len() <= w {
                windows.resize_with(w + 1, Vec::new);
            }
            windows[w].push((stop, inward));
        }
        if windows.is_empty() {
            windows.push(Vec::new());
        }
        let merchants_path = city.join("merchants.csv");
        let venues = csv_rows(&merchants_path)?
            .into_iter()
            .take(40)
            .filter_map(|r| {
                Some(Venue {
                    id: r.first()?.clone(),
                    lat: r.get(1)?.parse().ok()?,
                    lon: r.get(2)?.parse().ok()?,
                })
            })
            .collect();
        Ok(City {
            stops,
            districts,
            venues,
            windows,
            start,
        })
    }

    /// How many sensors publish.
    pub fn sensors(&self) -> usize {
        self.stops.len() + self.districts.len() * 3 + self.venues.len() + 1
    }

    /// The messages of window `n` (counted from the start, forever: the
    /// taps repeat, the clock goes on).
    pub fn messages(&self, n: u64) -> Vec<(String, Value)> {
        let ts = self.start + n as i64 * WINDOW_SECONDS;
        let hour = ((ts.rem_euclid(86_400)) as f64 / 3600.0 + 9.0) % 24.0; // KST
        let day = |phase: f64| (std::f64::consts::TAU * (hour - phase) / 24.0).sin();
        let taps = &self.windows[(n as usize) % self.windows.len()];
        let mut flow = vec![(0u32, 0u32); self.stops.len()];
        let mut per_district = vec![0u32; self.districts.len()];
        for &(stop, inward) in taps {
            if inward {
                flow[stop].0 += 1;
            } else {
                flow[stop].1 += 1;
            }
            if let Some(d) = self.stops[stop].district {
                per_district[d] += 1;
            }
        }
        let mut out = Vec::with_capacity(self.sensors());
        for (s, (inward, outward)) in self.stops.iter().zip(flow) {
            out.push((
                format!("city/subway/{}/flow", s.id),
                json!({"in": inward, "out": outward, "ts": ts, "lat": s.lat, "lon": s.lon, "name": s.name}),
            ));
        }
        for (d, trips) in self.districts.iter().zip(per_district) {
            let trips = f64::from(trips);
            let intensity = (40.0 + 25.0 * day(8.0).max(0.0) + 6.0 * trips).round();
            let speed = (62.0 - intensity / 6.0).clamp(8.0, 70.0).round();
            let occupancy = (intensity / 400.0).clamp(0.0, 1.0);
            let pm25 = (14.0 + 5.0 * day(6.0) + 0.4 * trips).max(2.0);
            let at = |v: f64| (v * 10.0).round() / 10.0;
            out.push((
                format!("city/traffic/{}/flow", d.name),
                json!({"intensity": intensity, "speed": speed, "occupancy": at(occupancy), "ts": ts, "lat": d.lat, "lon": d.lon}),
            ));
            out.push((
                format!("city/air/{}/reading", d.name),
                json!({"pm25": at(pm25), "pm10": at(pm25 * 1.7), "no2": at(18.0 + 0.6 * trips + 4.0 * day(7.0)), "ts": ts, "lat": d.lat, "lon": d.lon}),
            ));
            let night = !(6.0..18.5).contains(&hour);
            out.push((
                format!("city/streetlight/{}/state", d.name),
                json!({"powerState": if night { "on" } else { "off" }, "level": if night { 1.0 } else { 0.0 }, "ts": ts, "lat": d.lat + 0.002, "lon": d.lon}),
            ));
        }
        out.push((
            "city/weather/seoul/observation".into(),
            json!({"temperature": ((6.0 + 5.0 * day(9.0)) * 10.0).round() / 10.0, "humidity": ((0.6 - 0.15 * day(9.0)) * 100.0).round() / 100.0, "ts": ts, "lat": 37.5665, "lon": 126.978}),
        ));
        for (i, v) in self.venues.iter().enumerate() {
            // Busy by day, with a spot's own rhythm.
            let busy = 0.3 + 0.5 * day(8.0).max(0.0);
            let h = (n
                .wrapping_mul(2_654_435_761)
                .wrapping_add(i as u64 * 40_503)
                % 1000) as f64
                / 1000.0;
            out.push((
                format!("city/parking/{}/status", v.id),
                json!({"status": if h < busy { "occupied" } else { "free" }, "ts": ts, "lat": v.lat, "lon": v.lon}),
            ));
        }
        out
    }
}

/// Starts publishing the city to the MQTT broker at `host:port`; the
/// task runs until the process ends (reconnecting if the broker goes).
pub fn start(city: City, host: &str, port: u16) -> tokio::task::JoinHandle<()> {
    let mut options = rumqttc::MqttOptions::new(
        format!("civic-demo-sensors-{}", std::process::id()),
        host,
        port,
    );
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = rumqttc::AsyncClient::new(options, 4096);
    tokio::spawn(async move {
        loop {
            if events.poll().await.is_err() {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        let mut n = 0u64;
        loop {
            tick.tick().await;
            for (topic, payload) in city.messages(n) {
                if client
                    .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.to_string())
                    .await
                    .is_err()
                {
                    break;
                }
            }
            n += 1;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_is_taken_by_the_demo_mapping() {
        let mappings = civic_citydata::ingest::Mappings::parse(MAPPINGS, true).unwrap();
        let d = Geometry::from_geojson(&json!({"type":"Polygon","coordinates":[[[126.9,37.5],[127.0,37.5],[127.0,37.6],[126.9,37.6],[126.9,37.5]]]})).unwrap();
        let city = City {
            stops: vec![Stop {
                id: "1000".into(),
                lat: 37.55,
                lon: 126.95,
                name: "Line 1 Station 1".into(),
                district: Some(0),
            }],
            districts: vec![District {
                name: "jongno".into(),
                lat: 37.55,
                lon: 126.95,
                shape: d,
            }],
            venues: vec![Venue {
                id: "500000".into(),
                lat: 37.56,
                lon: 126.96,
            }],
            windows: vec![vec![(0, true), (0, false), (0, true)]],
            start: 1_583_020_800,
        };
        let messages = city.messages(0);
        assert_eq!(messages.len(), city.sensors());
        let core = civic_citydata::jsonld::Context::core();
        for (topic, payload) in &messages {
            let (m, caps) = mappings.find(topic).unwrap_or_else(|| panic!("{topic}"));
            let body = civic_citydata::ingest::entity_of(m, &caps, payload, 0).unwrap();
            // What the broker holds it to: its Smart Data Model.
            let e = civic_citydata::entity::parse_entity(&body, &core, 0).unwrap();
            let model = civic_citydata::models::of(&e.types).expect("a shipped model");
            assert_eq!(model.faults(&e), Vec::<String>::new(), "{topic}");
        }
        assert_eq!(messages[0].1["in"], 2);
        assert_eq!(messages[0].1["out"], 1);
    }
}
