#!/usr/bin/env python3
"""Rebuilds the definition files embedded in halo-validation from the shared CC0 sources.

Usage: python3 strip.py <shared/cacore directory> <output directory> [<profiles-resources.json>]

With the third argument (FHIR R4 4.0.1 `profiles-resources.json`), `r4/structure-only.json` is
rebuilt as well: the resources the SoFA serves that have no definition above, reduced to their
shape (names, order, cardinality, types) for the FHIR XML format, not for validation.

Only what the validator reads is kept (see PROVENANCE.md); documentation text (definition,
comment, mapping, narrative ...) is dropped so the embedded copy stays small. The values that are
kept are not changed.
"""
import glob
import json
import os
import sys

ELEMENT_KEYS = {
    "id", "path", "sliceName", "min", "max", "type", "contentReference", "binding",
    "constraint", "slicing", "maxLength", "mustSupport", "representation",
}
BEST_PRACTICE = "http://hl7.org/fhir/StructureDefinition/elementdefinition-bestpractice"


def strip_element(e):
    out = {}
    for k, v in e.items():
        if k in ELEMENT_KEYS or k.startswith("fixed") or k.startswith("pattern"):
            out[k] = v
    if "binding" in out:
        out["binding"] = {k: v for k, v in out["binding"].items() if k in ("strength", "valueSet")}
    if "constraint" in out:
        cs = []
        for c in out["constraint"]:
            c2 = {k: c[k] for k in ("key", "severity", "human", "expression") if k in c}
            if any(x.get("url") == BEST_PRACTICE and x.get("valueBoolean") for x in c.get("extension", [])):
                c2["extension"] = [{"url": BEST_PRACTICE, "valueBoolean": True}]
            cs.append(c2)
        out["constraint"] = cs
    if "type" in out:
        out["type"] = [{k: v for k, v in t.items() if k in ("code", "profile", "targetProfile")} for t in out["type"]]
    return out


def strip_sd(sd, keep):
    out = {k: sd[k] for k in ("resourceType", "id", "url", "version", "name", "status", "kind",
                              "abstract", "type", "baseDefinition", "derivation") if k in sd}
    for part in keep:
        if part in sd:
            out[part] = {"element": [strip_element(e) for e in sd[part]["element"]]}
    return out


def strip_concepts(concepts):
    return [dict({"code": c["code"]}, **({"concept": strip_concepts(c["concept"])} if "concept" in c else {}))
            for c in concepts]


def strip_terminology(r):
    out = {k: r[k] for k in ("resourceType", "id", "url", "version", "name", "content") if k in r}
    if r["resourceType"] == "ValueSet":
        if "compose" in r:
            inc = []
            for i in r["compose"].get("include", []):
                j = {k: i[k] for k in ("system", "valueSet", "filter") if k in i}
                if "concept" in i:
                    j["concept"] = [{"code": c["code"]} for c in i["concept"]]
                inc.append(j)
            out["compose"] = {"include": inc}
            if "exclude" in r["compose"]:
                out["compose"]["exclude"] = r["compose"]["exclude"]
    else:
        out["concept"] = strip_concepts(r.get("concept", []))
    return out


# Served by the SoFA, with no validation definition above: their shape is enough for XML.
STRUCTURE_ONLY = [
    "Basic", "CapabilityStatement", "CarePlan", "DiagnosticReport", "DocumentReference",
    "Procedure", "QuestionnaireResponse", "RelatedPerson", "ServiceRequest", "Subscription",
]
STRUCTURE_KEYS = {"id", "path", "min", "max", "type", "contentReference", "representation"}


def strip_structure(sd):
    out = {k: sd[k] for k in ("resourceType", "id", "url", "version", "name", "status", "kind",
                              "abstract", "type", "baseDefinition", "derivation") if k in sd}
    elements = []
    for e in sd["snapshot"]["element"]:
        e2 = {k: v for k, v in e.items() if k in STRUCTURE_KEYS}
        if "type" in e2:
            e2["type"] = [{"code": t["code"]} for t in e2["type"]]
        elements.append(e2)
    out["snapshot"] = {"element": elements}
    return out


def bundle(resources):
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in resources]}


def write(path, resources):
    with open(path, "w") as f:
        json.dump(bundle(resources), f, separators=(",", ":"))
        f.write("\n")


def main(src, dst, extra=None):
    os.makedirs(os.path.join(dst, "r4"), exist_ok=True)
    os.makedirs(os.path.join(dst, "ca-baseline"), exist_ok=True)
    res = []
    for f in sorted(glob.glob(os.path.join(src, "r4-base/StructureDefinition/*.json"))):
        res.append(strip_sd(json.load(open(f)), ["snapshot"]))
    write(os.path.join(dst, "r4/resources.json"), res)
    types = json.load(open(os.path.join(src, "r4-base/profiles-types.json")))
    write(os.path.join(dst, "r4/types.json"),
          [strip_sd(e["resource"], ["snapshot"]) for e in types["entry"]])
    term = []
    for f in sorted(glob.glob(os.path.join(src, "r4-base/required-terminology/*.json"))):
        if os.path.basename(f).startswith("_"):
            continue
        term.append(strip_terminology(json.load(open(f))))
    write(os.path.join(dst, "r4/terminology.json"), term)
    base_types = {r["type"] for r in res} | {e["resource"]["type"] for e in types["entry"]}
    ca = []
    for f in sorted(glob.glob(os.path.join(src, "ca-baseline/3f8a6d0/resources/*.json"))):
        sd = json.load(open(f))
        if sd["type"] in base_types:
            ca.append(strip_sd(sd, ["differential"]))
    write(os.path.join(dst, "ca-baseline/profiles.json"), ca)
    if extra:
        by_type = {e["resource"]["id"]: e["resource"] for e in json.load(open(extra))["entry"]
                   if e["resource"]["resourceType"] == "StructureDefinition"}
        write(os.path.join(dst, "r4/structure-only.json"),
              [strip_structure(by_type[t]) for t in STRUCTURE_ONLY])


if __name__ == "__main__":
    main(*sys.argv[1:4])
