#!/usr/bin/env python3
"""Builds search-parameters.json from the R4 definitions.

Usage: python3 search-parameters.py <dir with search-parameters.json> > search-parameters.json

For each resource type, the R4 search parameters the SoFA implements (`patient` and `subject`,
the reference parameters an app searches a launch by): the parameter's canonical URL and the
element paths of its FHIRPath expression for that type (`.where(...)` filters dropped: the
server compares the reference itself).
"""
import json
import sys

CODES = ("patient", "subject")

source = sys.argv[1]
parameters = json.load(open(f"{source}/search-parameters.json"))
types = {}
for entry in parameters["entry"]:
    resource = entry["resource"]
    if resource["code"] not in CODES or resource.get("type") != "reference":
        continue
    for base in resource.get("base", []):
        paths = []
        for alternative in (resource.get("expression") or "").split("|"):
            alternative = alternative.strip()
            if not alternative.startswith(base + "."):
                continue
            path = alternative[len(base) + 1 :].split(".where(")[0]
            if path.startswith("(") or "(" in path:
                continue
            if path not in paths:
                paths.append(path)
        if paths:
            types.setdefault(base, {})[resource["code"]] = {
                "url": resource["url"],
                "paths": paths,
            }

print(json.dumps({"resource": "http://hl7.org/fhir/SearchParameter (R4 4.0.1)",
                  "types": dict(sorted(types.items()))}, indent=1))
