#!/usr/bin/env python3
"""relay-svg.py SUMMARY.md OUT.svg: the relay benchmark's rates (delivered msg/s, ringmail
beside Postfix, one pair of bars per row) as an SVG picture for docs/benchmarks.md, read
from the table bench/relay-bench.py writes into its summary.md. Stdlib only."""

import sys


def rows(path):
    """(label, ringmail msg/s, Postfix msg/s) per table row."""
    header = None
    for line in open(path, encoding="utf-8"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None and "msgs/conn" in cells:
            header = cells
            continue
        if header is None or len(cells) != len(header) or set(cells[0]) <= set("-"):
            continue
        delivered = [i for i, h in enumerate(header) if h.endswith("delivered msg/s")]
        num = lambda s: float(s.replace(",", ""))
        yield (f"{cells[0]}/conn, {cells[1]} sessions", num(cells[delivered[0]]),
               num(cells[delivered[1]]))


def svg(data):
    width, bar, gap, left, top = 640, 22, 18, 170, 40
    top_rate = max(max(r, p) for _, r, p in data) * 1.15
    scale = (width - left - 60) / top_rate
    height = top + len(data) * (2 * bar + gap) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<text x="{left}" y="20" font-size="14">relay: delivered messages per second '
           f'(1 KiB, smtp-source to smtp-sink)</text>']
    y = top
    for label, ring, post in data:
        out.append(f'<text x="{left - 8}" y="{y + bar + 4}" text-anchor="end">{label}</text>')
        for value, name, colour in ((ring, "ringmail", "#2b6cb0"), (post, "Postfix", "#c05621")):
            w = value * scale
            out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" fill="{colour}"/>')
            out.append(f'<text x="{left + w + 5:.1f}" y="{y + bar - 6}">{name} {value:,.0f}</text>')
            y += bar
        y += gap
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    data = list(rows(sys.argv[1]))
    if not data:
        sys.exit(f"{sys.argv[1]}: no relay table found")
    open(sys.argv[2], "w", encoding="utf-8").write(svg(data))
