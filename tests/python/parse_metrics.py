"""Parses a Prometheus text exposition (stdin) with prometheus_client's own parser (the
reference implementation's format rules; a malformed exposition raises) and prints its samples
as JSON: [[name, {labels}, value], ...]. Exit 0 when it parsed, 1 otherwise.
"""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

try:
    samples = [
        [s.name, s.labels, s.value]
        for family in text_string_to_metric_families(sys.stdin.read())
        for s in family.samples
    ]
except Exception as e:  # the parser raises ValueError and friends on malformed input
    print(f"malformed exposition: {e}")
    sys.exit(1)
print(json.dumps(samples))
