#!/usr/bin/env python3
"""Draws one trace as a waterfall PNG: one bar per span on a shared time axis, indented by depth under its parent,
labelled with its name, a few dtm.* attributes and its duration, coloured by kind (SERVER, CLIENT, INTERNAL, …);
spans with status ERROR are outlined in red and marked ✖, span events are ticks on their bar.

Input: spans as JSON lines, as Tests/Interop/otlp_receiver.py writes them (OtlpReceiver.dump(path), or
`otlp_receiver.py --out spans.jsonl`): trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, attributes,
events, status_code, status_message, resource.

It needs Pillow, which is deliberately NOT a test requirement; install it in a venv of its own:

    python3 -m venv /tmp/wf && /tmp/wf/bin/pip install pillow
    /tmp/wf/bin/python scripts/trace-waterfall.py spans.jsonl -o docs/tracing-waterfall.png [--trace <32 hex>]

Without --trace it draws the trace with the most spans (and lists the others on stderr).
"""

import argparse
import json
import sys
from pathlib import Path

try:
    from PIL import Image, ImageDraw, ImageFont
except ImportError:
    sys.exit("trace-waterfall.py needs Pillow: python3 -m venv /tmp/wf && /tmp/wf/bin/pip install pillow, "
             "then run it with /tmp/wf/bin/python")

KIND_COLOURS = {
    "SERVER": (66, 133, 244),
    "CLIENT": (52, 168, 83),
    "INTERNAL": (251, 140, 0),
    "PRODUCER": (142, 68, 173),
    "CONSUMER": (0, 150, 136),
}
OTHER_COLOUR = (120, 120, 120)
ERROR_COLOUR = (217, 48, 37)
GRID_COLOUR = (225, 225, 225)
TEXT_COLOUR = (33, 33, 33)
MUTED_COLOUR = (110, 110, 110)
BACKGROUND = (255, 255, 255)

ROW = 26  # px per span
INDENT = 18  # px per depth level
MARGIN = 16
HEADER = 58
FOOTER = 40
BAR_HEIGHT = 14
LABEL_ATTRIBUTES = ("dtm.branch_id", "dtm.op", "dtm.result", "dtm.round_reason", "dtm.round_result")


def load_spans(paths):
    spans = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            spans.extend(json.loads(line) for line in f if line.strip())
    return spans


def pick_trace(spans, trace_id):
    by_trace = {}
    for s in spans:
        by_trace.setdefault(s["trace_id"], []).append(s)
    if not by_trace:
        sys.exit("no spans in the input")
    if trace_id:
        if trace_id not in by_trace:
            sys.exit("trace %s is not in the input (traces: %s)" % (trace_id, ", ".join(sorted(by_trace))))
        return trace_id, by_trace[trace_id]
    chosen = max(by_trace, key=lambda t: len(by_trace[t]))
    others = sorted(t for t in by_trace if t != chosen)
    if others:
        print("drawing trace %s (%d spans); also in the input: %s" % (
            chosen, len(by_trace[chosen]), ", ".join("%s (%d)" % (t, len(by_trace[t])) for t in others)),
            file=sys.stderr)
    return chosen, by_trace[chosen]


def ordered_rows(spans):
    """(depth, span) in depth-first order, children by start time; spans whose parent is absent are roots."""
    ids = {s["span_id"] for s in spans}
    children = {}
    for s in sorted(spans, key=lambda s: (s["start_ns"], s["end_ns"])):
        parent = s["parent_span_id"] if s["parent_span_id"] in ids else None
        children.setdefault(parent, []).append(s)
    rows, seen = [], set()

    def walk(span, depth):
        if span["span_id"] in seen:  # a malformed input with a parent cycle
            return
        seen.add(span["span_id"])
        rows.append((depth, span))
        for child in children.get(span["span_id"], []):
            walk(child, depth + 1)

    for root in children.get(None, []):
        walk(root, 0)
    for s in spans:  # anything only reachable through a cycle
        if s["span_id"] not in seen:
            walk(s, 0)
    return rows


def duration_text(ns):
    if ns >= 1_000_000_000:
        return "%.2f s" % (ns / 1e9)
    if ns >= 1_000_000:
        return "%.1f ms" % (ns / 1e6)
    return "%.0f µs" % (ns / 1e3)


def label_of(span):
    attrs = span.get("attributes") or {}
    details = [str(attrs[k]) for k in LABEL_ATTRIBUTES if k in attrs]
    text = span["name"]
    if attrs.get("url.full"):  # an HTTP branch call: name the branch (the URL's last path segment)
        text += " " + str(attrs["url.full"]).split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    if details:
        text += "  " + "/".join(details)
    return text


def load_font(size, bold=False):
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for folder in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu"):
        path = Path(folder) / name
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def nice_step(span_ns, target_ticks=8):
    raw = span_ns / target_ticks
    step = 1
    while step * 10 <= raw:
        step *= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= raw:
            return step * factor
    return step * 10


def draw(trace_id, spans, out, width):
    rows = ordered_rows(spans)
    t0 = min(s["start_ns"] for s in spans)
    t1 = max(max(s["end_ns"], s["start_ns"]) for s in spans)
    total = max(t1 - t0, 1)
    font, small, bold = load_font(13), load_font(11), load_font(15, bold=True)

    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_width = max(probe.textlength(label_of(s), font=font) + depth * INDENT for depth, s in rows)
    label_col = int(min(max(label_width + 2 * MARGIN, 260), width * 0.55))
    chart_left, chart_right = label_col + MARGIN, width - MARGIN - 70
    height = HEADER + len(rows) * ROW + FOOTER
    img = Image.new("RGB", (width, height), BACKGROUND)
    d = ImageDraw.Draw(img)

    def x_of(ns):
        return chart_left + (chart_right - chart_left) * (ns - t0) / total

    services = sorted({(s.get("resource") or {}).get("service.name", "?") for s in spans})
    errors = sum(1 for s in spans if s.get("status_code") == "ERROR")
    d.text((MARGIN, 10), "trace %s" % trace_id, fill=TEXT_COLOUR, font=bold)
    d.text((MARGIN, 32), "%d spans, %s, service %s%s" % (
        len(spans), duration_text(total), ", ".join(services), ", %d with errors" % errors if errors else ""),
        fill=MUTED_COLOUR, font=small)

    # time grid
    step = nice_step(total)
    tick = 0
    while tick <= total:
        x = x_of(t0 + tick)
        d.line([(x, HEADER - 6), (x, HEADER + len(rows) * ROW)], fill=GRID_COLOUR)
        d.text((x + 2, HEADER - 18), duration_text(tick) if tick else "0", fill=MUTED_COLOUR, font=small)
        tick += step

    for i, (depth, span) in enumerate(rows):
        top = HEADER + i * ROW
        if i % 2:
            d.rectangle([(0, top), (width, top + ROW - 1)], fill=(248, 249, 250))
        failed = span.get("status_code") == "ERROR"
        label = label_of(span)
        d.text((MARGIN + depth * INDENT, top + 5), label, fill=ERROR_COLOUR if failed else TEXT_COLOUR, font=font)
        colour = KIND_COLOURS.get(span.get("kind"), OTHER_COLOUR)
        x0, x1 = x_of(span["start_ns"]), x_of(max(span["end_ns"], span["start_ns"]))
        x1 = max(x1, x0 + 2)
        bar = [(x0, top + (ROW - BAR_HEIGHT) / 2), (x1, top + (ROW + BAR_HEIGHT) / 2)]
        d.rectangle(bar, fill=colour, outline=ERROR_COLOUR if failed else None, width=2 if failed else 0)
        for event in span.get("events") or []:
            ex = x_of(event.get("time_ns") or span["start_ns"])
            d.polygon([(ex, top + 3), (ex + 4, top + 7), (ex, top + 11), (ex - 4, top + 7)], fill=TEXT_COLOUR)
        mark = duration_text(span["end_ns"] - span["start_ns"])
        if failed:
            message = span.get("status_message") or ""
            mark = "✖ " + mark + ("  " + (message[:77] + "…" if len(message) > 80 else message) if message else "")
        d.text((x1 + 5, top + 6), mark, fill=ERROR_COLOUR if failed else MUTED_COLOUR, font=small)

    # legend
    y = HEADER + len(rows) * ROW + 14
    x = MARGIN
    for kind, colour in list(KIND_COLOURS.items())[:3] + [("ERROR (✖)", None), ("event", None)]:
        if colour is not None:
            d.rectangle([(x, y + 2), (x + 14, y + 12)], fill=colour)
        elif kind == "event":
            d.polygon([(x + 7, y + 1), (x + 11, y + 6), (x + 7, y + 11), (x + 3, y + 6)], fill=TEXT_COLOUR)
        else:
            d.rectangle([(x, y + 2), (x + 14, y + 12)], outline=ERROR_COLOUR, width=2)
        d.text((x + 20, y), kind, fill=TEXT_COLOUR, font=small)
        x += 40 + int(d.textlength(kind, font=small))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return len(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description="draw one trace of OTLP spans (JSON lines) as a waterfall PNG")
    parser.add_argument("spans", nargs="+", help="JSON-lines files written by otlp_receiver.py")
    parser.add_argument("-o", "--out", default="trace-waterfall.png", help="PNG to write")
    parser.add_argument("--trace", help="trace id to draw (default: the one with the most spans)")
    parser.add_argument("--width", type=int, default=1400, help="image width in pixels")
    args = parser.parse_args(argv)
    trace_id, spans = pick_trace(load_spans(args.spans), args.trace)
    n = draw(trace_id, spans, args.out, args.width)
    print("%s: %d spans of trace %s" % (args.out, n, trace_id))


if __name__ == "__main__":
    main()
