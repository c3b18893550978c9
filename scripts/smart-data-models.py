#!/usr/bin/env python3
"""Writes crates/citydata/models/smart-data-models.json: the FIWARE Smart
Data Models that the broker ships (their attributes, kinds, value types,
enumerations, units and required members) and the @context of each of
their subjects, from the SDM's own database as published on PyPI in
pysmartdatamodels (FIWARE Foundation, Apache-2.0).

Run by hand when the shipped models are to follow a newer release:
    scripts/smart-data-models.py [VERSION]
It is not part of the build; the output is committed.
"""
import collections, gzip, json, os, subprocess, sys, tempfile, zipfile

VERSION = sys.argv[1] if len(sys.argv) > 1 else "0.8.2.0"
SHIPPED = ["AirQualityObserved", "WeatherObserved", "TrafficFlowObserved",
           "CrowdFlowObserved", "ParkingSpot", "Streetlight"]
# Members of a GeoJSON geometry that the database lists beside a model's
# attributes; and the entity's own members.
NOT_ATTRIBUTES = {"id", "type", "bbox", "coordinates"}
OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "citydata", "models",
                   "smart-data-models.json")

with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--dest", tmp, f"pysmartdatamodels=={VERSION}"], check=True)
    wheel = next(os.path.join(tmp, f) for f in os.listdir(tmp) if f.endswith(".whl"))
    with zipfile.ZipFile(wheel) as z:
        assets = "pysmartdatamodels/model-assets/"
        rows = json.load(gzip.open(z.open(assets + "smartdatamodels.json.gz")))
        metadata = json.load(z.open(assets + "datamodels_metadata.json"))

# The database keeps the first branch of an attribute's oneOf/anyOf. Where
# the branches' JSON types differ, the schemas (read at their repositories)
# allow each of them:
#   common-schema.json GSMA-Commons seeAlso: a URI or a list of them;
#   WeatherObserved/schema.json pressureTendency: a term or a number;
#   weather-schema.json Weather-Commons visibility: a term or a number.
UNIONS = {
    (None, "seeAlso"): ["array", "string"],
    ("WeatherObserved", "pressureTendency"): ["string", "number"],
    ("WeatherObserved", "visibility"): ["string", "number"],
}

top = [r for r in rows if "parentId" not in r and r["property"] not in NOT_ATTRIBUTES]
meta = {m["dataModel"]: m for m in metadata if m["dataModel"] in SHIPPED}
missing = [m for m in SHIPPED if m not in meta]
if missing:
    sys.exit(f"pysmartdatamodels {VERSION} lacks {missing}")

models = []
for name in SHIPPED:
    m = meta[name]
    attributes = {}
    for r in top:
        if r["dataModel"] != name or r["repoName"] != m["subject"] or r["property"] in attributes:
            continue
        a = {"iri": r["context"], "kind": r.get("typeNGSI", "Property")}
        for key in ("format", "enum", "units", "description"):
            if r.get(key) not in (None, "", []):
                a[key] = r[key].strip() if isinstance(r[key], str) else r[key]
        union = UNIONS.get((name, r["property"])) or UNIONS.get((None, r["property"]))
        a["types"] = union or ([r["type"]] if r.get("type") else [])
        attributes[r["property"]] = dict(sorted(a.items()))
    models.append({
        "type": name,
        "subject": m["subject"],
        "version": m["version"],
        "title": m["title"].strip(),
        "description": (m.get("description") or "").strip(),
        "schema": m["jsonSchemaUrl"],
        "required": [p for p in m["required"] if p not in ("id", "type")],
        "attributes": dict(sorted(attributes.items())),
    })

# A subject's @context: every attribute of its models to the IRI the
# database gives it (as the subjects' published context.jsonld files do).
contexts = {}
for subject in sorted({m["subject"] for m in models}):
    iris = collections.defaultdict(collections.Counter)
    for r in top:
        if r["repoName"] == subject and r["context"] and not r["context"].startswith("@"):
            iris[r["property"]][r["context"]] += 1
    terms = {p: c.most_common(1)[0][0] for p, c in sorted(iris.items())}
    terms["id"] = "@id"
    terms["type"] = "@type"
    contexts[subject] = {"@context": dict(sorted(terms.items()))}

out = {
    "source": f"pysmartdatamodels {VERSION} (PyPI), the FIWARE Foundation's Smart Data "
              "Models database, Apache-2.0; written by scripts/smart-data-models.py",
    "models": models,
    "contexts": contexts,
}
with open(OUT, "w") as f:
    json.dump(out, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(f"{OUT}: {len(models)} models, "
      + ", ".join(f"{s} {len(c['@context'])} terms" for s, c in contexts.items()))
