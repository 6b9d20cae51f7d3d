"""Fetches a Prometheus endpoint and parses it with the real parser of prometheus_client.

Usage: prom_parse.py URL
Prints {"content_type": ..., "families": {name: {"type", "help", "samples": [{"name", "labels", "value"}]}}}
as JSON; exits non-zero when the text does not parse. The daemon sends OpenMetrics, so the
strict OpenMetrics parser is used for it (it also insists on the final "# EOF"); plain
Prometheus text goes through the classic parser.
"""

import json
import math
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text


def main() -> int:
    url = sys.argv[1]
    with urllib.request.urlopen(url, timeout=30) as resp:
        ctype = resp.headers.get("Content-Type", "")
        text = resp.read().decode("utf-8")
    parse = parse_om if ctype.startswith("application/openmetrics-text") else parse_text
    families = {}
    for fam in parse(text):
        families[fam.name] = {
            "type": fam.type,
            "help": fam.documentation,
            "samples": [
                {
                    "name": s.name,
                    "labels": dict(s.labels),
                    "value": s.value if math.isfinite(s.value) else str(s.value),
                }
                for s in fam.samples
            ],
        }
    json.dump({"content_type": ctype, "families": families}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
