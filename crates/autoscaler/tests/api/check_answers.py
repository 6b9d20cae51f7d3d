"""Checks an OpenAPI document and real answers against it.

Usage: check_answers.py OPENAPI.json ANSWERS.json
ANSWERS is a list of {"method", "path" (the document's template), "status", "body"}. Prints a
JSON report: {"valid": null or why the document is not valid OpenAPI,
"checked": n, "failures": [{"method", "path", "status", "error"}, ...]}, where a failure is an
answer whose operation or status the document lacks, or whose body its JSON schema rejects.
Exits 0 either way; the Rust test decides.
"""

import json
import sys

import jsonschema
from openapi_spec_validator import validate


def follow(doc, ref):
    """What a local `$ref` (`#/components/...`) names."""
    node = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def check(doc, answer):
    op = doc.get("paths", {}).get(answer["path"], {}).get(answer["method"].lower())
    if op is None:
        return "the document has no such operation"
    response = op.get("responses", {}).get(str(answer["status"]))
    if response is None:
        return f"the document lists no {answer['status']} for it"
    if "$ref" in response:
        response = follow(doc, response["$ref"])
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return "the document gives no JSON schema for this answer"
    # The schema, with the document's components beside it so its `$ref`s resolve.
    root = dict(schema)
    root["components"] = doc.get("components", {})
    validator = jsonschema.Draft202012Validator(root)
    try:
        errors = sorted(validator.iter_errors(answer["body"]), key=lambda e: list(e.path))
    except Exception as e:  # referencing's errors: a $ref to nowhere
        return f"the schema does not resolve: {str(e)[:300]}"

    if not errors:
        return None
    return "; ".join(
        f"at {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors[:5]
    )


def main():
    doc = json.load(open(sys.argv[1]))
    answers = json.load(open(sys.argv[2]))
    try:
        validate(doc)
        valid = None
    except Exception as e:  # the validator's own error types vary by version
        # Its message quotes the whole document; the first lines say what is wrong.
        valid = "\n".join(str(e).splitlines()[:12])[:2000]
    failures = []
    for a in answers:
        error = check(doc, a)
        if error:
            failures.append(
                {"method": a["method"], "path": a["path"], "status": a["status"], "error": error}
            )
    json.dump({"valid": valid, "checked": len(answers), "failures": failures}, sys.stdout)


if __name__ == "__main__":
    main()
