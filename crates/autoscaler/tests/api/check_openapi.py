"""Checks that the OpenAPI document covers every route of the HTTP router.

Usage: check_openapi.py ROUTER_SOURCE.rs OPENAPI_URL_OR_FILE
Reads the axum router's source (`.route("/p", get(..).put(..))`, `.nest("/prefix", var)` of a
`let var = Router::new()...;` chain), derives every (method, path) it serves, and prints a
JSON report: {"openapi": version, "routes": [[method, path], ...], "missing": [...],
"extra": [...]}, where "missing" are routes the document lacks and "extra" are documented
operations no route serves. Exits 0 either way; the Rust test decides.
"""

import json
import re
import sys
import urllib.request

METHOD = re.compile(r"(?:^|[\s.:(])(get|post|put|delete|patch)\(")


def call_args(text, start):
    """The text inside the parentheses opening at text[start]."""
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    raise ValueError("unbalanced parentheses")


def routes_in(stmt):
    out = []
    for m in re.finditer(r"\.route\(", stmt):
        args = call_args(stmt, m.end() - 1)
        path = re.match(r'\s*"([^"]*)"\s*,', args)
        if not path:
            continue
        handler = args[path.end():]
        methods = sorted(set(METHOD.findall(handler)))
        out.extend((meth, path.group(1)) for meth in methods)
    return out


def router_routes(path):
    """Routes of the router built in `path`, following `.merge(module::routes())` into the
    module's file beside it (`module/mod.rs` or `module.rs`)."""
    import os
    # Drop line comments so commented-out routes do not count.
    source = re.sub(r"//[^\n]*", "", open(path).read())
    here = os.path.dirname(path)
    chains = {}
    routes = []
    for stmt in source.split(";"):
        let = re.search(r"let\s+(?:mut\s+)?(\w+)\s*=\s*Router::new\(\)", stmt)
        nests = re.findall(r'\.nest\(\s*"([^"]*)"\s*,\s*(\w+)', stmt)
        own = routes_in(stmt)
        if let and not nests:
            chains[let.group(1)] = own
            continue
        routes.extend(own)
        for module in re.findall(r"\.merge\(\s*(\w+)::routes\(\)\s*\)", stmt):
            for cand in (os.path.join(here, module, "mod.rs"), os.path.join(here, module + ".rs")):
                if os.path.exists(cand):
                    routes.extend(router_routes(cand))
                    break
            else:
                raise SystemExit(f"cannot find the source of {module}::routes() beside {path}")
        for prefix, var in nests:
            routes.extend((m, prefix + p) for m, p in chains.get(var, []))
    return sorted(set(routes))


def main():
    where = sys.argv[2]
    if where.startswith("http"):
        with urllib.request.urlopen(where, timeout=30) as r:
            doc = json.load(r)
    else:
        doc = json.load(open(where))
    routes = router_routes(sys.argv[1])
    documented = {
        (m, p)
        for p, item in doc.get("paths", {}).items()
        for m in item
        if m in ("get", "put", "post", "delete", "patch")
    }
    json.dump(
        {
            "openapi": doc.get("openapi"),
            "routes": routes,
            "missing": [r for r in routes if r not in documented],
            "extra": sorted(d for d in documented if d not in set(routes)),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
