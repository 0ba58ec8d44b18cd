#!/usr/bin/env python3
"""Builds patient-compartment.json from the R4 definitions.

Usage: python3 patient-compartment.py <dir with compartmentdefinition-patient.json and
search-parameters.json> > patient-compartment.json

For each resource type of the R4 Patient CompartmentDefinition, the element paths of the search
parameters it lists, taken from each parameter's FHIRPath expression (the alternatives for that
type, `.where(...)` filters dropped: the references are compared with the patient anyway).
"""
import json
import sys

source = sys.argv[1]
compartment = json.load(open(f"{source}/compartmentdefinition-patient.json"))
parameters = json.load(open(f"{source}/search-parameters.json"))
expressions = {}
for entry in parameters["entry"]:
    resource = entry["resource"]
    for base in resource.get("base", []):
        expressions[(base, resource["code"])] = resource.get("expression") or ""

paths = {}
for item in compartment["resource"]:
    kind = item["code"]
    found = []
    for param in item.get("param", []):
        for alternative in expressions.get((kind, param), "").split("|"):
            alternative = alternative.strip()
            if not alternative.startswith(kind + "."):
                continue
            alternative = alternative.split(".where(")[0]
            path = alternative[len(kind) + 1:]
            if path and path not in found:
                found.append(path)
    paths[kind] = found

json.dump(
    {"url": compartment["url"], "version": compartment.get("version"), "paths": paths},
    sys.stdout,
    indent=1,
    sort_keys=True,
)
print()
