//! `civic city …`: files into the broker and out of it, through its
//! NGSI-LD API as any client would (a closed tenant with `--token` or the
//! session of `civic login`).
//!
//! - `import FILE`: CSV (`.csv`, `.csv.gz`), JSON (an array of entities),
//!   JSON Lines (`.jsonl`, `.ndjson`) or GeoJSON (`.geojson`). The whole
//!   file is read and checked first — a bad row stops the import with its
//!   line, before anything is sent — then sent in batch upserts (merging
//!   attributes into entities that exist) under a progress bar.
//! - `export`: the entities of a query, their history, or its
//!   aggregation per period, as CSV or Parquet (`--out x.parquet`).
//! - `models [TYPE]`: the Smart Data Models the broker ships, or one's
//!   attributes (`--dry-run` of an import checks a file against them).

use crate::table::{feature_entity, Cell, Converter, ImportSpec, Kind, Table};
use anyhow::{anyhow, bail, Context, Result};
use civic_client::client::{Client, HubArgs};
use civic_client::output::progress_bar as progress;
use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum CityCommand {
    /// Import entities from a CSV, JSON, JSON Lines or GeoJSON file.
    Import {
        file: PathBuf,
        /// The entities' type (else a `type` column or property).
        #[arg(long = "type")]
        entity_type: Option<String>,
        /// The column (or GeoJSON property) identifying each entity; a
        /// value that is not a URI becomes urn:ngsi-ld:TYPE:VALUE.
        #[arg(long)]
        id_column: Option<String>,
        /// The latitude column (default: lat, latitude, 위도, y).
        #[arg(long)]
        lat: Option<String>,
        /// The longitude column (default: lon, lng, longitude, 경도, x).
        #[arg(long)]
        lon: Option<String>,
        /// The column of each row's observation time.
        #[arg(long)]
        observed_at: Option<String>,
        /// The UTC offset of times written without one (+09:00 in Korea).
        #[arg(long)]
        utc_offset: Option<String>,
        /// A column kept as text however it looks (codes, phone numbers).
        #[arg(long = "text")]
        text_columns: Vec<String>,
        /// A column's unit, COLUMN=CODE (UN/CEFACT: GQ µg/m³, CEL °C).
        #[arg(long = "unit")]
        units: Vec<String>,
        /// The tenant (NGSILD-Tenant); default the default tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// An @context URL for the attribute names (sent as a Link).
        #[arg(long)]
        context: Option<String>,
        /// Check the file and print what would be sent; send nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Export entities (or their history) as CSV or Parquet.
    Export {
        /// The entities' type.
        #[arg(long = "type")]
        entity_type: String,
        /// An NGSI-LD q filter, e.g. 'pm25>15'.
        #[arg(long)]
        q: Option<String>,
        /// Only these attributes (comma-separated).
        #[arg(long, value_delimiter = ',')]
        attrs: Vec<String>,
        #[arg(long)]
        tenant: Option<String>,
        /// One row per recorded instance instead of the latest values.
        #[arg(long)]
        history: bool,
        /// With --history: from this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// With --history: until this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// With --history: aggregate per --period with these methods
        /// (avg, min, max, sum, totalCount, distinctCount, stddev, sumsq).
        #[arg(long, value_delimiter = ',')]
        aggregate: Vec<String>,
        /// The aggregation's period (ISO 8601, e.g. PT1H, P1D).
        #[arg(long)]
        period: Option<String>,
        /// The file to write (its extension says the format: .csv or
        /// .parquet); standard output (CSV) if not given.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The FIWARE Smart Data Models the broker ships (entities of them are
    /// checked against them), or one model's attributes.
    Models {
        /// A model (e.g. AirQualityObserved): its attributes, their
        /// types, allowed values and units.
        model: Option<String>,
    },
}

pub async fn run(args: &HubArgs, command: CityCommand) -> Result<()> {
    match command {
        CityCommand::Import {
            file,
            entity_type,
            id_column,
            lat,
            lon,
            observed_at,
            utc_offset,
            text_columns,
            units,
            tenant,
            context,
            dry_run,
        } => {
            let units = units
                .iter()
                .map(|u| {
                    u.split_once('=')
                        .map(|(c, code)| (c.to_owned(), code.to_owned()))
                        .ok_or_else(|| anyhow!("--unit is COLUMN=CODE, not {u:?}"))
                })
                .collect::<Result<Vec<_>>>()?;
            let spec = ImportSpec {
                entity_type,
                id_column,
                lat_column: lat,
                lon_column: lon,
                observed_at,
                utc_offset,
                text_columns,
                units,
            };
            let entities = read_entities(&file, &spec)?;
            if dry_run {
                for e in entities.iter().take(3) {
                    println!("{e}");
                }
                let (refused, incomplete) = model_faults(&entities);
                if let Some((id, why)) = refused.first() {
                    bail!(
                        "{}: {} of {} entities break their Smart Data Model, and the broker would refuse them; the first, {id}: {why}",
                        file.display(),
                        refused.len(),
                        entities.len()
                    );
                }
                if let Some((id, missing)) = incomplete.first() {
                    eprintln!(
                        "warning: {} entities lack attributes their Smart Data Model requires (the broker takes them; another write or source may add them), e.g. {id}: {missing}",
                        incomplete.len()
                    );
                }
                eprintln!(
                    "{}: {} entities read; nothing sent (--dry-run)",
                    file.display(),
                    entities.len()
                );
                return Ok(());
            }
            let client = Client::new(args)?;
            import(&client, &entities, tenant.as_deref(), context.as_deref()).await
        }
        CityCommand::Export {
            entity_type,
            q,
            attrs,
            tenant,
            history,
            since,
            until,
            aggregate,
            period,
            out,
        } => {
            if !history && (since.is_some() || until.is_some() || !aggregate.is_empty()) {
                bail!("--since, --until and --aggregate go with --history");
            }
            if aggregate.is_empty() != period.is_none() {
                bail!("--aggregate and --period go together");
            }
            let parquet = match out
                .as_ref()
                .and_then(|o| o.extension())
                .and_then(|e| e.to_str())
            {
                Some("parquet") => true,
                Some("csv") | None => false,
                Some(other) => bail!("--out names a .csv or .parquet file, not .{other}"),
            };
            let client = Client::new(args)?;
            let mut query = vec![("type", entity_type)];
            if let Some(q) = q {
                query.push(("q", q));
            }
            if !attrs.is_empty() {
                query.push(("attrs", attrs.join(",")));
            }
            let table = if history {
                let mut query = query;
                let (from, to) = (since, until);
                match (from, to) {
                    (Some(f), Some(t)) => query.extend([
                        ("timerel", "between".into()),
                        ("timeAt", f),
                        ("endTimeAt", t),
                    ]),
                    (Some(f), None) => query.extend([("timerel", "after".into()), ("timeAt", f)]),
                    (None, Some(t)) => query.extend([("timerel", "before".into()), ("timeAt", t)]),
                    (None, None) => {}
                }
                if let Some(p) = &period {
                    query.extend([
                        ("options", "aggregatedValues".into()),
                        ("aggrMethods", aggregate.join(",")),
                        ("aggrPeriodDuration", p.clone()),
                    ]);
                }
                let entities = fetch(
                    &client,
                    "/ngsi-ld/v1/temporal/entities",
                    &query,
                    tenant.as_deref(),
                )
                .await?;
                if period.is_some() {
                    aggregation_table(&entities, &aggregate)
                } else {
                    history_table(&entities)
                }
            } else {
                query.push(("options", "keyValues".into()));
                let entities =
                    fetch(&client, "/ngsi-ld/v1/entities", &query, tenant.as_deref()).await?;
                Table::of_entities(&entities)
            };
            match &out {
                Some(path) if parquet => {
                    let file = std::fs::File::create(path)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    write_parquet(&table, file)?;
                }
                Some(path) => std::fs::write(path, table.to_csv())
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => {
                    use std::io::Write;
                    std::io::stdout()
                        .lock()
                        .write_all(table.to_csv().as_bytes())?;
                }
            }
            if let Some(path) = &out {
                eprintln!(
                    "{} rows, {} columns written to {}",
                    table.rows.len(),
                    table.columns.len(),
                    path.display()
                );
            }
            Ok(())
        }
        CityCommand::Models { model: None } => {
            println!(
                "{:<22} {:<26} {:>8}  required",
                "model", "subject", "version"
            );
            for m in crate::models::all() {
                println!(
                    "{:<22} {:<26} {:>8}  {}",
                    m.name,
                    m.subject,
                    m.version,
                    m.required.join(", ")
                );
            }
            println!("\n@contexts built in (never fetched):");
            for url in crate::models::context_urls_built_in() {
                println!("  {url}");
            }
            Ok(())
        }
        CityCommand::Models { model: Some(name) } => {
            let m = crate::models::all()
                .iter()
                .find(|m| m.name.eq_ignore_ascii_case(&name))
                .ok_or_else(|| {
                    let known: Vec<&str> = crate::models::all()
                        .iter()
                        .map(|m| m.name.as_str())
                        .collect();
                    anyhow!("{name} is not a shipped model ({})", known.join(", "))
                })?;
            println!("{} ({} {}): {}", m.name, m.subject, m.version, m.title);
            println!("schema: {}", m.schema);
            println!("required: {}\n", m.required.join(", "));
            for (attr, a) in &m.attributes {
                let mut what = a.types.join(" or ");
                if let Some(f) = &a.format {
                    what = format!("{what} ({f})");
                }
                if let Some(allowed) = &a.allowed {
                    what = format!("{what}: {}", allowed.join(" | "));
                }
                let units = a
                    .units
                    .as_deref()
                    .map(|u| format!(" [{u}]"))
                    .unwrap_or_default();
                println!("{attr:<30} {:<13} {what}{units}", a.kind);
            }
            Ok(())
        }
    }
}

/// The entities that break their shipped Smart Data Model, and why; and
/// those that lack attributes it requires (read as the broker reads them
/// with the core context: the models know their attributes by those
/// names too).
type Verdicts = Vec<(String, String)>;

fn model_faults(entities: &[Value]) -> (Verdicts, Verdicts) {
    let core = crate::jsonld::Context::core();
    let (mut refused, mut incomplete) = (Vec::new(), Vec::new());
    for body in entities {
        let Ok(e) = crate::entity::parse_entity(body, &core, 0) else {
            continue;
        };
        let Some(model) = crate::models::of(&e.types) else {
            continue;
        };
        let faults = model.faults(&e);
        if !faults.is_empty() {
            refused.push((e.id.clone(), faults.join("; ")));
        }
        let missing = model.missing(&e);
        if !missing.is_empty() {
            incomplete.push((e.id.clone(), missing.join(", ")));
        }
    }
    (refused, incomplete)
}

/// The file's entities, every row checked.
pub fn read_entities(path: &Path, spec: &ImportSpec) -> Result<Vec<Value>> {
    let name = path.to_string_lossy().to_lowercase();
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader: Box<dyn Read> = if name.ends_with(".gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let base = name.trim_end_matches(".gz");
    let at = |line: u64, e: String| anyhow!("{}, line {line}: {e}", path.display());
    if base.ends_with(".csv") || base.ends_with(".tsv") {
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&bytes);
        if let Err(e) = std::str::from_utf8(bytes) {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            return Err(at(line as u64, "the file is not UTF-8 (Korean public data is often CP949: convert it with iconv -f cp949 -t utf-8)".into()));
        }
        let mut csv = csv::ReaderBuilder::new()
            .delimiter(if base.ends_with(".tsv") { b'\t' } else { b',' })
            .flexible(true)
            .from_reader(bytes);
        let header: Vec<String> = csv
            .headers()
            .map_err(|e| anyhow!("{}: the header does not read: {e}", path.display()))?
            .iter()
            .map(str::to_owned)
            .collect();
        let converter =
            Converter::new(&header, spec).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let mut out = Vec::new();
        let mut ids = std::collections::HashMap::new();
        // Lines counted from the bytes (a quoted field may span lines).
        let (mut line, mut counted) = (1u64, 0usize);
        for record in csv.records() {
            let record = record.map_err(|e| anyhow!("{}: {e}", path.display()))?;
            // (A record's position may be before the line break that
            // ends the one before it.)
            let mut start = record.position().map_or(counted, |p| p.byte() as usize);
            while bytes.get(start).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
                start += 1;
            }
            line += bytes[counted..start.max(counted)]
                .iter()
                .filter(|b| **b == b'\n')
                .count() as u64;
            counted = start.max(counted);
            let row: Vec<&str> = record.iter().collect();
            let entity = converter.entity(&row).map_err(|e| at(line, e))?;
            let id = entity["id"].as_str().unwrap_or_default().to_owned();
            let repeated = ids.insert(id.clone(), line);
            if let (Some(first), None) = (repeated, &spec.observed_at) {
                return Err(at(line, format!("{id} is on line {first} too: one row an entity, unless the rows are observations in time (--observed-at)")));
            }
            out.push(entity);
        }
        return Ok(out);
    }
    let known = [".json", ".jsonl", ".ndjson", ".geojson"];
    if !known.iter().any(|ext| base.ends_with(ext)) {
        bail!(
            "{}: not a .csv, .tsv, .json, .jsonl, .ndjson or .geojson file (gzipped too)",
            path.display()
        );
    }
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {} as UTF-8", path.display()))?;
    if base.ends_with(".jsonl") || base.ends_with(".ndjson") {
        return text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                let v: Value =
                    serde_json::from_str(l).map_err(|e| at(i as u64 + 1, e.to_string()))?;
                check_entity(&v).map_err(|e| at(i as u64 + 1, e))?;
                Ok(v)
            })
            .collect();
    }
    let doc: Value = serde_json::from_str(&text).map_err(|e| at(e.line() as u64, e.to_string()))?;
    if base.ends_with(".geojson") || doc["type"] == "FeatureCollection" {
        let features = doc["features"]
            .as_array()
            .ok_or_else(|| anyhow!("{}: a FeatureCollection without features", path.display()))?;
        return features
            .iter()
            .enumerate()
            .map(|(i, f)| {
                feature_entity(f, spec)
                    .map_err(|e| anyhow!("{}, feature {}: {e}", path.display(), i + 1))
            })
            .collect();
    }
    let entities = match doc {
        Value::Array(a) => a,
        Value::Object(_) => vec![doc],
        _ => bail!("{}: neither an entity nor an array of them", path.display()),
    };
    for (i, e) in entities.iter().enumerate() {
        check_entity(e).map_err(|m| anyhow!("{}, entity {}: {m}", path.display(), i + 1))?;
    }
    Ok(entities)
}

fn check_entity(e: &Value) -> Result<(), String> {
    if !e.is_object() {
        return Err("not an entity (a JSON object)".into());
    }
    if !e["id"].is_string() || !(e["type"].is_string() || e["type"].is_array()) {
        return Err("an entity needs an id and a type".into());
    }
    Ok(())
}

/// Batch upserts of at most 1000 entities or 512 KiB, attributes merged
/// into entities that exist; stops at the first batch the broker refuses
/// in part, naming what it refused.
async fn import(
    client: &Client,
    entities: &[Value],
    tenant: Option<&str>,
    context: Option<&str>,
) -> Result<()> {
    let started = std::time::Instant::now();
    let bar = progress(
        entities.len() as u64,
        "importing {bar:40} {pos}/{len} entities ({per_sec}, {eta})",
    );
    let mut sent = 0usize;
    let mut batches = 0usize;
    let mut start = 0;
    while start < entities.len() {
        let mut size = 2;
        let mut end = start;
        // An entity observed several times goes once a batch, in the
        // file's order.
        let mut ids = std::collections::HashSet::new();
        while end < entities.len() && end - start < 1000 {
            if !ids.insert(entities[end]["id"].as_str().unwrap_or_default()) {
                break;
            }
            let len = entities[end].to_string().len() + 1;
            if end > start && size + len > 512 * 1024 {
                break;
            }
            size += len;
            end += 1;
        }
        let batch = &entities[start..end];
        let mut rb = client
            .request(
                Method::POST,
                "/ngsi-ld/v1/entityOperations/upsert?options=update",
            )
            .header("content-type", "application/json")
            .body(serde_json::to_vec(batch)?);
        if let Some(t) = tenant {
            rb = rb.header("NGSILD-Tenant", t);
        }
        if let Some(c) = context {
            rb = rb.header(
                "Link",
                format!("<{c}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\""),
            );
        }
        let response = client.dispatch(rb).await?;
        if response.status().as_u16() == 207 {
            let body: Value = response.json().await.unwrap_or_default();
            let errors = body["errors"].as_array().cloned().unwrap_or_default();
            bar.abandon();
            let first = errors
                .first()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e["entityId"].as_str().unwrap_or("?"),
                        e["error"]["detail"].as_str().unwrap_or("refused")
                    )
                })
                .unwrap_or_default();
            bail!(
                "the broker refused {} of the {} entities of batch {} (the {} before it are in), e.g. {first}",
                errors.len(),
                batch.len(),
                batches + 1,
                sent
            );
        }
        sent += batch.len();
        batches += 1;
        bar.set_position(sent as u64);
        start = end;
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "imported {sent} entities in {batches} batches in {secs:.1} s ({:.0}/s) into tenant {:?}",
        sent as f64 / secs.max(0.001),
        tenant.unwrap_or("")
    );
    Ok(())
}

/// Every page of a query's answer.
async fn fetch(
    client: &Client,
    path: &str,
    query: &[(&str, String)],
    tenant: Option<&str>,
) -> Result<Vec<Value>> {
    const PAGE: usize = 1000;
    let mut out = Vec::new();
    let mut bar = None;
    loop {
        let mut rb = client
            .request(Method::GET, path)
            .query(query)
            .query(&[
                ("limit", PAGE.to_string()),
                ("offset", out.len().to_string()),
                ("count", "true".into()),
            ])
            .header("accept", "application/json");
        if let Some(t) = tenant {
            rb = rb.header("NGSILD-Tenant", t);
        }
        let response = client.dispatch(rb).await?;
        let total: u64 = response
            .headers()
            .get("NGSILD-Results-Count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let bar = bar.get_or_insert_with(|| {
            progress(total, "exporting {bar:40} {pos}/{len} entities ({eta})")
        });
        let page: Vec<Value> = response
            .json()
            .await
            .context("the broker's answer does not read")?;
        let n = page.len();
        out.extend(page);
        bar.set_position(out.len() as u64);
        if n < PAGE || (total > 0 && out.len() as u64 >= total) {
            break;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(out)
}

/// The instances of a temporal answer as a list: an attribute's one
/// instance may come alone.
fn instances(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![v],
        _ => vec![],
    }
}

const SKIP: [&str; 4] = ["id", "type", "@context", "scope"];

/// One row per recorded instance: entity, attribute, time, value, unit.
fn history_table(entities: &[Value]) -> Table {
    let columns = [
        "entity",
        "type",
        "attribute",
        "observedAt",
        "value",
        "unitCode",
    ];
    let mut rows = Vec::new();
    for e in entities {
        let Value::Object(m) = e else { continue };
        for (attr, v) in m.iter().filter(|(k, _)| !SKIP.contains(&k.as_str())) {
            for i in instances(v) {
                let at = i
                    .get("observedAt")
                    .or_else(|| i.get("modifiedAt"))
                    .cloned()
                    .unwrap_or(Value::Null);
                let value = i
                    .get("value")
                    .or_else(|| i.get("object"))
                    .cloned()
                    .unwrap_or(Value::Null);
                rows.push(vec![
                    Cell::of(&e["id"]),
                    Cell::of(&e["type"]),
                    Some(Cell::Text(attr.clone())),
                    Cell::of(&at),
                    Cell::of(&value),
                    Cell::of(i.get("unitCode").unwrap_or(&Value::Null)),
                ]);
            }
        }
    }
    Table {
        columns: columns.map(str::to_owned).to_vec(),
        rows,
    }
}

/// One row per period and method: entity, attribute, method, start,
/// end, value.
fn aggregation_table(entities: &[Value], methods: &[String]) -> Table {
    let columns = [
        "entity",
        "type",
        "attribute",
        "method",
        "start",
        "end",
        "value",
    ];
    let mut rows = Vec::new();
    for e in entities {
        let Value::Object(m) = e else { continue };
        for (attr, v) in m.iter().filter(|(k, _)| !SKIP.contains(&k.as_str())) {
            for method in methods {
                for bucket in v[method.as_str()].as_array().into_iter().flatten() {
                    rows.push(vec![
                        Cell::of(&e["id"]),
                        Cell::of(&e["type"]),
                        Some(Cell::Text(attr.clone())),
                        Some(Cell::Text(method.clone())),
                        Cell::of(&bucket[1]),
                        Cell::of(&bucket[2]),
                        Cell::of(&bucket[0]),
                    ]);
                }
            }
        }
    }
    Table {
        columns: columns.map(str::to_owned).to_vec(),
        rows,
    }
}

/// The table as Parquet: a column per column, DOUBLE, BOOLEAN or UTF-8
/// text as its cells are, every one optional; one row group.
pub fn write_parquet(table: &Table, out: impl std::io::Write + Send) -> Result<()> {
    use parquet::basic::{LogicalType, Repetition, Type as Physical};
    use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::types::Type;
    use std::sync::Arc;

    let kinds = table.kinds();
    let mut fields = Vec::with_capacity(kinds.len());
    for (name, kind) in table.columns.iter().zip(&kinds) {
        let builder = match kind {
            Kind::Number => Type::primitive_type_builder(name, Physical::DOUBLE),
            Kind::Bool => Type::primitive_type_builder(name, Physical::BOOLEAN),
            Kind::Text => Type::primitive_type_builder(name, Physical::BYTE_ARRAY)
                .with_logical_type(Some(LogicalType::String)),
        };
        fields.push(Arc::new(
            builder.with_repetition(Repetition::OPTIONAL).build()?,
        ));
    }
    let schema = Arc::new(
        Type::group_type_builder("city_data")
            .with_fields(fields)
            .build()?,
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_created_by("civic".into())
            .build(),
    );
    let mut writer = SerializedFileWriter::new(out, schema, props)?;
    let mut group = writer.next_row_group()?;
    let mut i = 0;
    while let Some(mut column) = group.next_column()? {
        let cells = table.rows.iter().map(|r| r[i].as_ref());
        let levels: Vec<i16> = cells.clone().map(|c| i16::from(c.is_some())).collect();
        match kinds[i] {
            Kind::Number => {
                let values: Vec<f64> = cells
                    .filter_map(|c| match c {
                        Some(Cell::Number(n)) => Some(*n),
                        _ => None,
                    })
                    .collect();
                column
                    .typed::<DoubleType>()
                    .write_batch(&values, Some(&levels), None)?;
            }
            Kind::Bool => {
                let values: Vec<bool> = cells
                    .filter_map(|c| match c {
                        Some(Cell::Bool(b)) => Some(*b),
                        _ => None,
                    })
                    .collect();
                column
                    .typed::<BoolType>()
                    .write_batch(&values, Some(&levels), None)?;
            }
            Kind::Text => {
                let values: Vec<ByteArray> = cells
                    .filter_map(|c| c.map(|c| ByteArray::from(c.text().into_bytes())))
                    .collect();
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&values, Some(&levels), None)?;
            }
        }
        column.close()?;
        i += 1;
    }
    group.close()?;
    writer.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_row_is_named_by_its_line_even_after_a_field_on_two_lines() {
        let dir = std::env::temp_dir().join(format!("civic-city-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = ImportSpec {
            entity_type: Some("Dock".into()),
            ..Default::default()
        };
        for (name, text) in [
            (
                "crlf.csv",
                "id,lat,lon,n\r\nA,37.5,127.0,1\r\nB,127.0,37.5,2\r\n",
            ),
            (
                "lf.csv",
                "id,lat,lon,n\n\"A\nstill A\",37.5,127.0,1\nB,127.0,37.5,2\n",
            ),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            let err = read_entities(&path, &spec).unwrap_err().to_string();
            let line = if name == "lf.csv" { "line 4" } else { "line 3" };
            assert!(err.contains(line), "{name}: {err}");
        }
        let sheet = dir.join("docks.xlsx");
        std::fs::write(&sheet, "PK").unwrap();
        let err = read_entities(&sheet, &spec).unwrap_err().to_string();
        assert!(err.contains("not a .csv"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
