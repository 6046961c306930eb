"""Independent checks of the services' OpenAPI descriptions (tests/tests/openapi.rs).

    openapi_check.py spec FILE...
        validates each description with openapi-spec-validator (PyPI, pinned in xtask).
    openapi_check.py examples NAME=FILE... -- DOC.md...
        validates every JSON example of the docs marked
            <!-- openapi: SERVICE METHOD PATH request -->
            <!-- openapi: SERVICE METHOD PATH response STATUS -->
        on the line before its ```json fence, against the request body (or the response body of
        STATUS) that SERVICE's description gives for the operation PATH matches, with
        openapi-schema-validator's OpenAPI 3.1 validator (jsonschema underneath). As a check that
        the check can fail, each example is also validated with its required properties removed
        (which must fail wherever the schema requires any).

    openapi_check.py answers NAME=FILE... -- ANSWERS.json
        checks real answers ([{service, method, template, status, content_type, body}]) against
        the descriptions: the status must be described for the operation, the content type
        among the described ones, and a JSON body must validate against the described schema.

Prints one JSON object: {"examples": [{doc, line, service, method, path, what, ok, error,
mutant_rejected}]} (examples mode) or {"specs": [{file, ok, error}]} (spec mode).
"""

import json
import re
import sys

from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec

MARK = re.compile(r"<!--\s*openapi:\s*(\S+)\s+(GET|POST|PUT|DELETE|PATCH)\s+(\S+)\s+(request|response\s+\d{3})\s*-->")


def specs(files):
    out = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            doc = json.load(fh)
        try:
            validate_spec(doc)
            out.append({"file": f, "ok": True, "error": None})
        except Exception as e:  # the validator's own error, reported as is
            out.append({"file": f, "ok": False, "error": str(e)[:2000]})
    return {"specs": out}


def operation(doc, method, path):
    """The operation of `doc` whose path template matches the concrete `path`."""
    for template, item in doc["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    return None, None


def schema_of(op, what):
    if what == "request":
        return op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    status = what.split()[1]
    return op.get("responses", {}).get(status, {}).get("content", {}).get("application/json", {}).get("schema")


def validator_for(doc, schema):
    # The schema's $refs point into the description's components: validate against a root that
    # carries them.
    root = dict(schema)
    root["components"] = doc.get("components", {})
    return OAS31Validator(root)


def drop_required(instance, schema, doc):
    """`instance` without the properties its (possibly referenced) schema requires, or None."""
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][name]
    required = schema.get("required", [])
    if not isinstance(instance, dict) or not required:
        return None
    return {k: v for k, v in instance.items() if k not in required}


def examples(named, docs):
    loaded = {}
    for pair in named:
        name, f = pair.split("=", 1)
        with open(f, encoding="utf-8") as fh:
            loaded[name] = json.load(fh)
    out = []
    for d in docs:
        with open(d, encoding="utf-8") as fh:
            lines = fh.read().split("\n")
        for i, line in enumerate(lines):
            m = MARK.search(line)
            if not m:
                continue
            service, method, path, what = m.group(1), m.group(2), m.group(3), " ".join(m.group(4).split())
            rec = {"doc": d, "line": i + 1, "service": service, "method": method, "path": path, "what": what}
            j = i + 1
            if j >= len(lines) or not lines[j].strip().startswith("```json"):
                rec.update(ok=False, error="no ```json block right after the marker", mutant_rejected=None)
                out.append(rec)
                continue
            indent = len(lines[j]) - len(lines[j].lstrip())
            k = j + 1
            while k < len(lines) and not lines[k].strip().startswith("```"):
                k += 1
            text = "\n".join(line_[indent:] if line_[:indent].strip() == "" else line_ for line_ in lines[j + 1 : k])
            doc = loaded.get(service)
            if doc is None:
                rec.update(ok=False, error=f"no description named {service}", mutant_rejected=None)
                out.append(rec)
                continue
            template, op = operation(doc, method, path.split("?", 1)[0])
            if op is None:
                rec.update(ok=False, error=f"{service} describes no {method} {path}", mutant_rejected=None)
                out.append(rec)
                continue
            schema = schema_of(op, what)
            if schema is None:
                rec.update(ok=False, error=f"{method} {template}: no JSON schema for the {what}", mutant_rejected=None)
                out.append(rec)
                continue
            try:
                instance = json.loads(text)
            except ValueError as e:
                rec.update(ok=False, error=f"not JSON: {e}", mutant_rejected=None)
                out.append(rec)
                continue
            v = validator_for(doc, schema)
            errors = sorted(v.iter_errors(instance), key=lambda e: list(e.path))
            rec["ok"] = not errors
            rec["error"] = "; ".join(f"{list(e.path)}: {e.message}" for e in errors)[:2000] or None
            mutant = drop_required(instance, schema, doc)
            rec["mutant_rejected"] = None if mutant is None else not v.is_valid(mutant)
            out.append(rec)
    return {"examples": out}


def load(named):
    loaded = {}
    for pair in named:
        name, f = pair.split("=", 1)
        with open(f, encoding="utf-8") as fh:
            loaded[name] = json.load(fh)
    return loaded


def answers(named, file):
    loaded = load(named)
    with open(file, encoding="utf-8") as fh:
        given = json.load(fh)
    out = []
    for a in given:
        rec = dict(a)
        rec.pop("body", None)
        doc = loaded[a["service"]]
        op = doc["paths"].get(a["template"], {}).get(a["method"])
        error = None
        if op is None:
            error = "operation not described"
        else:
            resp = op.get("responses", {}).get(str(a["status"]))
            if resp is None:
                error = f"status {a['status']} not described (described: {sorted(op.get('responses', {}))})"
            else:
                content = resp.get("content", {})
                ctype = (a.get("content_type") or "").split(";")[0].strip()
                described = {k.split(";")[0].strip(): v for k, v in content.items()}
                if content and ctype not in described:
                    error = f"content type {ctype!r} not described ({sorted(described)})"
                elif ctype == "application/json" and "schema" in described.get(ctype, {}):
                    try:
                        instance = json.loads(a["body"])
                    except ValueError as e:
                        instance, error = None, f"not JSON: {e}"
                    if error is None:
                        v = validator_for(doc, described[ctype]["schema"])
                        errs = list(v.iter_errors(instance))
                        if errs:
                            error = "; ".join(f"{list(e.path)}: {e.message}" for e in errs)[:1000]
        rec["ok"] = error is None
        rec["error"] = error
        out.append(rec)
    return {"answers": out}


def main(argv):
    if len(argv) >= 2 and argv[1] == "spec":
        result = specs(argv[2:])
    elif len(argv) >= 2 and argv[1] == "answers" and "--" in argv:
        sep = argv.index("--")
        result = answers(argv[2:sep], argv[sep + 1])
    elif len(argv) >= 2 and argv[1] == "examples" and "--" in argv:
        sep = argv.index("--")
        result = examples(argv[2:sep], argv[sep + 1 :])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
