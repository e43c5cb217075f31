#!/usr/bin/env python3
"""llama-bench's JSON lines (`-o jsonl`) on stdin as one line: "pp512=... tg128=... tg128_d512=...",
with any `peak_kb=...` line (GNU time's) passed through. Used by the tools/bench_*.sh scripts."""

import json
import sys

out = []
for line in sys.stdin:
    if line.startswith("peak_kb"):
        out.append(line.strip())
    elif line.startswith("{"):
        d = json.loads(line)
        name = "pp%d" % d["n_prompt"] if d["n_prompt"] else "tg%d" % d["n_gen"]
        if d.get("n_depth"):
            name += "_d%d" % d["n_depth"]
        out.append("%s=%.2f" % (name, d["avg_ts"]))
print(" ".join(out))
