//! Entities to and from tables, for file import and export: a CSV row or
//! a GeoJSON feature becomes an entity (`Converter`), entities and their
//! history become typed columns (`Table`) written as CSV or Parquet.
//!
//! Real files are dirty: headers in Korean, codes with leading zeros,
//! empty cells, coordinates under many names (or swapped). A cell is a
//! number only if it reads as one and is not a code (`0150`); an empty
//! cell leaves the attribute out; a column of places is found by its
//! usual names; a bad row is refused with its line, before anything is
//! sent.

use serde_json::{json, Map, Value};

/// How the rows of a file become entities.
#[derive(Debug, Clone, Default)]
pub struct ImportSpec {
    /// The entities' type (else a `type` column gives it).
    pub entity_type: Option<String>,
    /// The column that identifies each entity (default `id`).
    pub id_column: Option<String>,
    /// Columns of latitude and longitude (default: found by name).
    pub lat_column: Option<String>,
    pub lon_column: Option<String>,
    /// The column of each row's observation time.
    pub observed_at: Option<String>,
    /// The offset of times written without one (`+09:00`); default UTC.
    pub utc_offset: Option<String>,
    /// Columns kept as text whatever they look like.
    pub text_columns: Vec<String>,
    /// Units by column (UN/CEFACT codes: `GQ` for µg/m³, `CEL` for °C).
    pub units: Vec<(String, String)>,
}

/// Members of an entity that no column or property may become: one
/// named so keeps its value under the name and a `_`.
const RESERVED: [&str; 7] = [
    "id",
    "type",
    "location",
    "scope",
    "createdAt",
    "modifiedAt",
    "observedAt",
];

const LAT_NAMES: [&str; 5] = ["lat", "latitude", "위도", "y", "wgs84_lat"];
const LON_NAMES: [&str; 7] = ["lon", "lng", "long", "longitude", "경도", "x", "wgs84_lon"];

/// One column of the file and what it becomes.
#[derive(Debug, Clone)]
enum Role {
    Id,
    Type,
    Lat,
    Lon,
    ObservedAt,
    Attribute {
        name: String,
        text: bool,
        unit: Option<String>,
    },
}

/// Turns rows of one header into entities.
#[derive(Debug, Clone)]
pub struct Converter {
    roles: Vec<Role>,
    entity_type: Option<String>,
    utc_offset: String,
}

/// An attribute name from a column's header: letters (any script),
/// digits and `_`, the rest `_`; not starting with a digit.
pub fn attribute_name(header: &str) -> String {
    let mut out = String::new();
    for c in header.trim().chars() {
        if c.is_alphanumeric() || c == '_' {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_owned();
    if out.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        format!("a_{out}")
    } else {
        out
    }
}

fn find(
    header: &[String],
    given: &Option<String>,
    names: &[&str],
) -> Result<Option<usize>, String> {
    match given {
        Some(name) => header
            .iter()
            .position(|h| h.trim() == name)
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "there is no column {name:?} (the header has {})",
                    header.join(", ")
                )
            }),
        None => Ok(header
            .iter()
            .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))),
    }
}

impl Converter {
    pub fn new(header: &[String], spec: &ImportSpec) -> Result<Converter, String> {
        let id = find(header, &spec.id_column, &["id"])?.ok_or_else(|| {
            format!(
                "no column is named id: name the column that identifies each entity with --id-column (the header has {})",
                header.join(", ")
            )
        })?;
        let ty = header.iter().position(|h| h.trim() == "type");
        if spec.entity_type.is_none() && ty.is_none() {
            return Err("give the entities' type with --type (or a column named type)".into());
        }
        if let Some(t) = &spec.entity_type {
            if attribute_name(t) != *t {
                return Err(format!("{t:?} is not a type name: letters, digits and _"));
            }
        }
        let lat = find(header, &spec.lat_column, &LAT_NAMES)?;
        let lon = find(header, &spec.lon_column, &LON_NAMES)?;
        if lat.is_some() != lon.is_some() {
            return Err(
                "a place needs both a latitude and a longitude column (--lat, --lon)".into(),
            );
        }
        let observed = match &spec.observed_at {
            Some(c) => find(header, &Some(c.clone()), &[])?,
            None => None,
        };
        for (column, _) in &spec.units {
            find(header, &Some(column.clone()), &[])?;
        }
        for column in &spec.text_columns {
            find(header, &Some(column.clone()), &[])?;
        }
        let mut seen = std::collections::HashSet::new();
        let mut roles = Vec::with_capacity(header.len());
        for (i, h) in header.iter().enumerate() {
            let role = if i == id {
                Role::Id
            } else if Some(i) == ty && spec.entity_type.is_none() {
                Role::Type
            } else if Some(i) == lat {
                Role::Lat
            } else if Some(i) == lon {
                Role::Lon
            } else if Some(i) == observed {
                Role::ObservedAt
            } else {
                let mut name = attribute_name(h);
                if name.is_empty() {
                    return Err(format!(
                        "column {} has no name an attribute can take",
                        i + 1
                    ));
                }
                // A column named as an NGSI-LD member (a `type` column
                // beside --type, a `location` of another kind) keeps its
                // value under the name and a `_`.
                if RESERVED.contains(&name.as_str()) {
                    name.push('_');
                }
                if !seen.insert(name.clone()) {
                    return Err(format!("two columns become the attribute {name:?}"));
                }
                let h = h.trim();
                Role::Attribute {
                    text: spec.text_columns.iter().any(|c| c == h),
                    unit: spec
                        .units
                        .iter()
                        .find(|(c, _)| c == h)
                        .map(|(_, u)| u.clone()),
                    name,
                }
            };
            roles.push(role);
        }
        let utc_offset = spec.utc_offset.clone().unwrap_or_else(|| "Z".into());
        if utc_offset != "Z" && parse_offset(&utc_offset).is_none() {
            return Err(format!("{utc_offset:?} is not a UTC offset such as +09:00"));
        }
        Ok(Converter {
            roles,
            entity_type: spec.entity_type.clone(),
            utc_offset,
        })
    }

    /// The entity of one row (normalized form, the core @context's terms).
    pub fn entity(&self, row: &[&str]) -> Result<Value, String> {
        if row.len() != self.roles.len() {
            return Err(format!(
                "{} fields where the header has {}",
                row.len(),
                self.roles.len()
            ));
        }
        let mut id = None;
        let mut ty = self.entity_type.clone();
        let (mut lat, mut lon, mut observed) = (None, None, None);
        let mut attrs = Map::new();
        for (role, cell) in self.roles.iter().zip(row) {
            let cell = cell.trim();
            match role {
                Role::Id => id = Some(cell),
                Role::Type => ty = Some(cell.to_owned()),
                Role::Lat => lat = Some(cell),
                Role::Lon => lon = Some(cell),
                Role::ObservedAt => observed = Some(cell),
                Role::Attribute { name, text, unit } => {
                    if cell.is_empty() {
                        continue;
                    }
                    let mut p = json!({"type": "Property", "value": cell_value(cell, *text)});
                    if let Some(u) = unit {
                        p["unitCode"] = json!(u);
                    }
                    attrs.insert(name.clone(), p);
                }
            }
        }
        let id = id.filter(|i| !i.is_empty()).ok_or("the id is empty")?;
        let ty = ty.filter(|t| !t.is_empty()).ok_or("the type is empty")?;
        if attribute_name(&ty) != ty {
            return Err(format!("{ty:?} is not a type name: letters, digits and _"));
        }
        let mut entity = Map::new();
        entity.insert("id".into(), json!(entity_id(&ty, id)));
        entity.insert("type".into(), json!(ty));
        if let Some(at) = observed.filter(|o| !o.is_empty()) {
            let at = self.datetime(at)?;
            for p in attrs.values_mut() {
                p["observedAt"] = json!(at);
            }
        }
        match (lat.filter(|l| !l.is_empty()), lon.filter(|l| !l.is_empty())) {
            (Some(lat), Some(lon)) => {
                let (lat, lon) = coordinates(lat, lon)?;
                entity.insert(
                    "location".into(),
                    json!({"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}),
                );
            }
            (None, None) => {}
            _ => return Err("a latitude without a longitude, or the reverse".into()),
        }
        entity.extend(attrs);
        Ok(Value::Object(entity))
    }

    /// A time as RFC 3339 (UTC), from RFC 3339 or `YYYY-MM-DD[ T]HH:MM[:SS]`
    /// in the file's offset.
    fn datetime(&self, raw: &str) -> Result<String, String> {
        use time::format_description::well_known::Rfc3339;
        let bad = || {
            format!("{raw:?} is not a time (2026-12-07T09:30:00+09:00, or 2026-12-07 09:30 with --utc-offset)")
        };
        if let Ok(t) = time::OffsetDateTime::parse(raw, &Rfc3339) {
            return Ok(crate::entity::format_datetime(millis(t)));
        }
        let naive = raw.replace('T', " ");
        let (date, clock) = naive.split_once(' ').ok_or_else(bad)?;
        let clock = if clock.len() == 5 {
            format!("{clock}:00")
        } else {
            clock.to_owned()
        };
        let offset = if self.utc_offset == "Z" {
            "+00:00".to_owned()
        } else {
            self.utc_offset.clone()
        };
        let t = time::OffsetDateTime::parse(&format!("{date}T{clock}{offset}"), &Rfc3339)
            .map_err(|_| bad())?;
        Ok(crate::entity::format_datetime(millis(t)))
    }
}

fn millis(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn parse_offset(s: &str) -> Option<()> {
    let b = s.as_bytes();
    let ok = b.len() == 6
        && matches!(b[0], b'+' | b'-')
        && b[1..3].iter().all(u8::is_ascii_digit)
        && b[3] == b':'
        && b[4..6].iter().all(u8::is_ascii_digit);
    ok.then_some(())
}

/// An entity id: the cell itself if it is a URI, else
/// `urn:ngsi-ld:TYPE:CELL` with what a URN may not hold %-encoded.
pub fn entity_id(ty: &str, cell: &str) -> String {
    if crate::entity::is_uri(cell) {
        return cell.to_owned();
    }
    let mut out = format!("urn:ngsi-ld:{ty}:");
    for b in cell.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a cell holds: a number unless it is a code (`0150`, `+82…`) or
/// not finite, true/false, else the text.
pub fn cell_value(cell: &str, text: bool) -> Value {
    if text {
        return json!(cell);
    }
    match cell {
        "true" | "TRUE" | "True" => return json!(true),
        "false" | "FALSE" | "False" => return json!(false),
        _ => {}
    }
    let digits = cell.strip_prefix('-').unwrap_or(cell);
    let code = digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0.");
    let plain = cell
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'e' | b'E'))
        && !cell.starts_with('+');
    if plain && !code {
        if let Ok(i) = cell.parse::<i64>() {
            return json!(i);
        }
        if let Ok(f) = cell.parse::<f64>() {
            if f.is_finite() {
                return json!(f);
            }
        }
    }
    json!(cell)
}

fn coordinates(lat: &str, lon: &str) -> Result<(f64, f64), String> {
    let read = |s: &str, what: &str| {
        s.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("the {what} {s:?} is not a number"))
    };
    let (lat, lon) = (read(lat, "latitude")?, read(lon, "longitude")?);
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        let hint = if (-90.0..=90.0).contains(&lon) && (-180.0..=180.0).contains(&lat) {
            " (are latitude and longitude swapped? name them with --lat and --lon)"
        } else {
            ""
        };
        return Err(format!(
            "latitude {lat}, longitude {lon} is not a place{hint}"
        ));
    }
    Ok((lat, lon))
}

/// The entity of a GeoJSON feature: its id from `--id-column` (a
/// property) or the feature's own, its geometry as `location`, its
/// properties as attributes.
pub fn feature_entity(feature: &Value, spec: &ImportSpec) -> Result<Value, String> {
    let props = match &feature["properties"] {
        Value::Object(p) => p.clone(),
        Value::Null => Map::new(),
        _ => return Err("a feature's properties are not an object".into()),
    };
    let id = match &spec.id_column {
        Some(c) => props
            .get(c)
            .cloned()
            .ok_or_else(|| format!("a feature has no property {c:?}"))?,
        None => feature
            .get("id")
            .cloned()
            .ok_or("a feature has no id: name the property that identifies it with --id-column")?,
    };
    let id = match id {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        _ => return Err("a feature's id is neither text nor a number".into()),
    };
    let ty = match (&spec.entity_type, props.get("type")) {
        (Some(t), _) => t.clone(),
        (None, Some(Value::String(t))) => t.clone(),
        _ => return Err("give the entities' type with --type".into()),
    };
    if id.trim().is_empty() {
        return Err("a feature's id is empty".into());
    }
    let mut entity = Map::new();
    entity.insert("id".into(), json!(entity_id(&ty, id.trim())));
    entity.insert("type".into(), json!(ty));
    if !feature["geometry"].is_null() {
        entity.insert(
            "location".into(),
            json!({"type": "GeoProperty", "value": feature["geometry"]}),
        );
    }
    for (k, v) in props {
        let gives_type = k == "type" && spec.entity_type.is_none();
        if v.is_null() || Some(&k) == spec.id_column.as_ref() || gives_type {
            continue;
        }
        let mut name = attribute_name(&k);
        if name.is_empty() {
            return Err(format!(
                "the property {k:?} has no name an attribute can take"
            ));
        }
        // As for a CSV column named as an NGSI-LD member.
        if RESERVED.contains(&name.as_str()) {
            name.push('_');
        }
        let mut p = json!({"type": "Property", "value": v});
        if let Some((_, u)) = spec.units.iter().find(|(c, _)| *c == k) {
            p["unitCode"] = json!(u);
        }
        entity.insert(name, p);
    }
    Ok(Value::Object(entity))
}

/// A cell of an exported table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Number(f64),
    Bool(bool),
    Text(String),
}

impl Cell {
    /// A JSON value's cell; null is none.
    pub fn of(v: &Value) -> Option<Cell> {
        match v {
            Value::Null => None,
            Value::Number(n) => n.as_f64().map(Cell::Number),
            Value::Bool(b) => Some(Cell::Bool(*b)),
            Value::String(s) => Some(Cell::Text(s.clone())),
            // Places and structured values: their JSON text (GeoJSON for
            // a place, which DuckDB's ST_GeomFromGeoJSON reads).
            other => Some(Cell::Text(other.to_string())),
        }
    }

    pub fn text(&self) -> String {
        match self {
            Cell::Number(n) => {
                if n.fract() == 0.0 && n.abs() < 1e15 {
                    format!("{}", *n as i64)
                } else {
                    n.to_string()
                }
            }
            Cell::Bool(b) => b.to_string(),
            Cell::Text(s) => s.clone(),
        }
    }
}

/// What a column holds: numbers, booleans, or text (a mixed column is
/// text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Number,
    Bool,
    Text,
}

/// Columns of cells, a row per entity or per instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<Cell>>>,
}

impl Table {
    /// Entities in keyValues form: `id`, `type`, then the attributes by
    /// name.
    pub fn of_entities(entities: &[Value]) -> Table {
        let mut names = std::collections::BTreeSet::new();
        for e in entities {
            if let Value::Object(m) = e {
                names.extend(
                    m.keys()
                        .filter(|k| !matches!(k.as_str(), "id" | "type" | "@context")),
                );
            }
        }
        let mut columns = vec!["id".to_owned(), "type".to_owned()];
        columns.extend(names.into_iter().cloned());
        let index: std::collections::HashMap<&str, usize> = columns
            .iter()
            .enumerate()
            .skip(2)
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let rows = entities
            .iter()
            .map(|e| {
                let mut row = vec![None; columns.len()];
                row[0] = Cell::of(&e["id"]);
                row[1] = Cell::of(&match &e["type"] {
                    Value::Array(types) => json!(types
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")),
                    t => t.clone(),
                });
                if let Value::Object(m) = e {
                    for (k, v) in m {
                        if let Some(&i) = index.get(k.as_str()) {
                            row[i] = Cell::of(v);
                        }
                    }
                }
                row
            })
            .collect();
        Table { columns, rows }
    }

    /// What each column holds.
    pub fn kinds(&self) -> Vec<Kind> {
        (0..self.columns.len())
            .map(|i| {
                let mut kind = None;
                for row in &self.rows {
                    let k = match &row[i] {
                        None => continue,
                        Some(Cell::Number(_)) => Kind::Number,
                        Some(Cell::Bool(_)) => Kind::Bool,
                        Some(Cell::Text(_)) => Kind::Text,
                    };
                    kind = match kind {
                        None => Some(k),
                        Some(prev) if prev == k => Some(k),
                        Some(_) => Some(Kind::Text),
                    };
                }
                kind.unwrap_or(Kind::Text)
            })
            .collect()
    }

    /// RFC 4180 CSV with a header row (UTF-8, `\r\n`).
    pub fn to_csv(&self) -> String {
        fn field(out: &mut String, v: &str) {
            if v.contains([',', '"', '\n', '\r']) || v.starts_with(' ') || v.ends_with(' ') {
                out.push('"');
                out.push_str(&v.replace('"', "\"\""));
                out.push('"');
            } else {
                out.push_str(v);
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &mut dyn Iterator<Item = String>| {
            for (i, c) in cells.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                field(out, &c);
            }
            out.push_str("\r\n");
        };
        line(&mut out, &mut self.columns.iter().cloned());
        for row in &self.rows {
            line(
                &mut out,
                &mut row
                    .iter()
                    .map(|c| c.as_ref().map(Cell::text).unwrap_or_default()),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(h: &str) -> Vec<String> {
        h.split(',').map(str::to_owned).collect()
    }

    #[test]
    fn rows_become_entities_and_dirty_cells_read_as_they_mean() {
        let spec = ImportSpec {
            entity_type: Some("ParkingSpot".into()),
            id_column: Some("주차장코드".into()),
            units: vec![("요금".into(), "KRW".into())],
            observed_at: Some("기준시각".into()),
            utc_offset: Some("+09:00".into()),
            ..Default::default()
        };
        let c = Converter::new(
            &header("주차장코드,주차장명,위도,경도,요금,가능,기준시각,비고"),
            &spec,
        )
        .unwrap();
        let e = c
            .entity(&[
                "0150",
                "시청 앞",
                "37.5663",
                "126.9779",
                "1200",
                "true",
                "2026-12-07 09:30",
                "",
            ])
            .unwrap();
        assert_eq!(e["id"], "urn:ngsi-ld:ParkingSpot:0150");
        assert_eq!(e["주차장명"]["value"], "시청 앞");
        assert_eq!(e["요금"]["value"], 1200);
        assert_eq!(e["요금"]["unitCode"], "KRW");
        assert_eq!(e["요금"]["observedAt"], "2026-12-07T00:30:00.000Z");
        assert_eq!(e["가능"]["value"], true);
        assert!(
            e.get("비고").is_none(),
            "an empty cell leaves the attribute out"
        );
        assert_eq!(
            e["location"]["value"]["coordinates"],
            json!([126.9779, 37.5663])
        );
        // Codes stay text, numbers read as numbers.
        assert_eq!(cell_value("0150", false), json!("0150"));
        assert_eq!(cell_value("0.5", false), json!(0.5));
        assert_eq!(cell_value("-12", false), json!(-12));
        assert_eq!(cell_value("+8210", false), json!("+8210"));
        assert_eq!(cell_value("1,234", false), json!("1,234"));
        assert_eq!(cell_value("NaN", false), json!("NaN"));
        assert_eq!(cell_value("12", true), json!("12"));
        // Bad rows say why.
        let swapped = c
            .entity(&["1", "x", "126.9", "37.5", "", "", "", ""])
            .unwrap_err();
        assert!(swapped.contains("swapped"), "{swapped}");
        assert!(c.entity(&["1", "x"]).unwrap_err().contains("2 fields"));
        assert!(c.entity(&["", "x", "", "", "", "", "", ""]).is_err());
        assert!(c
            .entity(&["1", "x", "", "", "", "", "yesterday", ""])
            .unwrap_err()
            .contains("not a time"));
    }

    #[test]
    fn headers_that_cannot_be_read_are_refused_at_once() {
        let spec = ImportSpec {
            entity_type: Some("Sensor".into()),
            ..Default::default()
        };
        assert!(Converter::new(&header("code,value"), &spec)
            .unwrap_err()
            .contains("--id-column"));
        assert!(Converter::new(&header("id,lat,value"), &spec)
            .unwrap_err()
            .contains("longitude"));
        assert!(Converter::new(&header("id,PM 2.5,PM-2.5"), &spec)
            .unwrap_err()
            .contains("two columns"));
        let c = Converter::new(&header("id,type,location"), &spec).unwrap();
        let e = c.entity(&["1", "e-bike", "gate 3"]).unwrap();
        assert_eq!(e["type"], "Sensor");
        assert_eq!(e["type_"]["value"], "e-bike");
        assert_eq!(e["location_"]["value"], "gate 3");
        assert!(Converter::new(&header("id,v"), &ImportSpec::default())
            .unwrap_err()
            .contains("--type"));
        assert_eq!(attribute_name("PM2.5 (㎍/㎥)"), "PM2_5");
        assert_eq!(attribute_name("2층"), "a_2층");
        assert_eq!(entity_id("Sensor", "a b/c"), "urn:ngsi-ld:Sensor:a%20b%2Fc");
        assert_eq!(entity_id("Sensor", "urn:x:1"), "urn:x:1");
    }

    #[test]
    fn features_become_entities() {
        let f = json!({"type": "Feature", "id": 7, "geometry": {"type": "Point", "coordinates": [127.0, 37.5]},
            "properties": {"name": "A", "capacity": 40, "note": null}});
        let spec = ImportSpec {
            entity_type: Some("ParkingSpot".into()),
            ..Default::default()
        };
        let e = feature_entity(&f, &spec).unwrap();
        assert_eq!(e["id"], "urn:ngsi-ld:ParkingSpot:7");
        assert_eq!(e["location"]["value"]["type"], "Point");
        assert_eq!(e["capacity"]["value"], 40);
        assert!(e.get("note").is_none());
    }

    #[test]
    fn entities_become_typed_columns_and_csv() {
        let t = Table::of_entities(&[
            json!({"id": "urn:a", "type": "S", "pm25": 12.5, "name": "x, \"y\""}),
            json!({"id": "urn:b", "type": "S", "pm25": 3, "location": {"type": "Point", "coordinates": [1, 2]}}),
        ]);
        assert_eq!(t.columns, ["id", "type", "location", "name", "pm25"]);
        assert_eq!(
            t.kinds(),
            [Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Number]
        );
        let csv = t.to_csv();
        let mut lines = csv.split("\r\n");
        assert_eq!(lines.next(), Some("id,type,location,name,pm25"));
        assert_eq!(lines.next(), Some("urn:a,S,,\"x, \"\"y\"\"\",12.5"));
        let b = lines.next().unwrap();
        assert!(b.starts_with("urn:b,S,\"{") && b.ends_with("}\",,3"), "{b}");
    }
}
