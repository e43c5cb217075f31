#!/usr/bin/env python3
"""Medians and per-round after/before ratios of tools/bench_ab.sh's output.

    python3 tools/bench_ab_summary.py bench_ab.jsonl
"""
import json,sys,statistics as st,collections
rows=[json.loads(l) for l in open(sys.argv[1] if len(sys.argv) > 1 else 'bench_ab.jsonl')]
g=collections.defaultdict(list)
for x in rows:
    r=x['r']; g[(r['dtype'],r['prompt_tokens'],x['bin'])].append(r)
print("| dtype | prompt | build | prefill tok/s (median) | decode tok/s (median) | peak RSS MB (median) | runs |")
print("|---|---|---|---|---|---|---|")
for k in sorted(g):
    v=g[k]
    print(f"| {k[0]} | {k[1]} | {k[2]} | {st.median(a['prefill_tokens_per_s'] for a in v):.1f} | {st.median(a['decode_tokens_per_s'] for a in v):.1f} | {st.median(a['peak_rss_mb'] for a in v):.0f} | {len(v)} |")

pairs=collections.defaultdict(dict)
for x in rows:
    r=x['r']; pairs[(r['dtype'],r['prompt_tokens'],x['round'])][x['bin']]=r
ratios=collections.defaultdict(lambda: ([], []))
for (d,p,_),v in sorted(pairs.items()):
    if 'before' in v and 'after' in v:
        ratios[(d,p)][0].append(v['after']['prefill_tokens_per_s']/v['before']['prefill_tokens_per_s'])
        ratios[(d,p)][1].append(v['after']['decode_tokens_per_s']/v['before']['decode_tokens_per_s'])
for k in sorted(ratios):
    a,b=ratios[k]
    print(k, 'after/before prefill', [round(x,2) for x in a], 'decode', [round(x,2) for x in b])
