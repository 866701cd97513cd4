"""The growth curve: how the by-id and run-scoped answers' warm p50 change with the store's size.

Reads the `--out` JSON of `query_suite.py` runs on stores of different sizes and writes an SVG
chart (spans on a log axis, milliseconds on a log axis, one line per answer) and a Markdown
table with each figure's ratio to the smallest store's.

    python benches/growth.py --out benches/growth.svg results-1m.json results-10m.json ...
"""

import argparse
import json
import math
import statistics

ANSWERS = [
    "trace by id (API, with payloads)",
    "trace by id (SQL)",
    "trail of the 10k-span run (API)",
    "replay of the 10k-span run, a page of 100 steps (API)",
    "why-chain of a step of the 10k-span run (API)",
    "lineage of the 10k-span run (API)",
    "newest runs, first page of 50 (API)",
    "run search: pod + tool + day (API)",
]
COLOURS = ["#1b6ca8", "#d1495b", "#00798c", "#edae49", "#66a182", "#8d6a9f", "#2e4057", "#c46d5e"]


def p50(values):
    return statistics.median(values) if values else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="SVG file to write")
    ap.add_argument("results", nargs="+", help="query_suite.py --out files")
    args = ap.parse_args()
    runs = sorted((json.load(open(f)) for f in args.results), key=lambda r: r["summary"]["spans"])
    sizes = [r["summary"]["spans"] for r in runs]
    series = {}
    for name in ANSWERS:
        points = [(r["summary"]["spans"], p50(r["results"].get(name, {}).get("cairn_warm", [])))
                  for r in runs]
        points = [(x, y * 1000) for x, y in points if y is not None]
        if points:
            series[name] = points

    w, h, left, right, top, bottom = 860, 420, 70, 330, 20, 50
    all_y = [y for pts in series.values() for _, y in pts]
    x0, x1 = math.log10(min(sizes)), math.log10(max(sizes))
    y0, y1 = math.floor(math.log10(min(all_y))), math.ceil(math.log10(max(all_y)))
    if x1 == x0:
        x1 = x0 + 1
    sx = lambda x: left + (math.log10(x) - x0) / (x1 - x0) * (w - left - right)
    sy = lambda y: top + (y1 - math.log10(y)) / (y1 - y0) * (h - top - bottom)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>']
    for e in range(y0, y1 + 1):
        y = sy(10 ** e)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{w - right}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{10 ** e:g} ms</text>')
    for s in sizes:
        x = sx(s)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{h - bottom}" stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="{h - bottom + 18}" text-anchor="middle">{s / 1e6:.1f}M spans</text>')
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 8}" text-anchor="middle">spans in the store (log)</text>')
    for i, (name, pts) in enumerate(series.items()):
        c = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{'M' if j == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for j, (x, y) in enumerate(pts))
        out.append(f'<path d="{path}" fill="none" stroke="{c}" stroke-width="2"/>')
        for x, y in pts:
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{c}"/>')
        ly = top + 14 + i * 18
        out.append(f'<line x1="{w - right + 16}" y1="{ly - 4}" x2="{w - right + 36}" y2="{ly - 4}" stroke="{c}" stroke-width="2"/>')
        out.append(f'<text x="{w - right + 42}" y="{ly}">{name}</text>')
    out.append("</svg>")
    open(args.out, "w").write("\n".join(out) + "\n")

    print("| answer | " + " | ".join(f"{s / 1e6:.1f}M spans" for s in sizes) + " | largest / smallest |")
    print("|---|" + "---|" * (len(sizes) + 1))
    for name, pts in series.items():
        by = dict(pts)
        cells = [f"{by[s]:.1f} ms" if s in by else "–" for s in sizes]
        ratio = f"{by[sizes[-1]] / by[sizes[0]]:.2f}" if sizes[0] in by and sizes[-1] in by else "–"
        print(f"| {name} | " + " | ".join(cells) + f" | {ratio} |")


if __name__ == "__main__":
    main()
