"""The results table (terminal and Markdown), the latency-vs-load chart and the README copy."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
README = BENCH_DIR / "README.md"
LATEST_START = "<!-- latest-figures:start -->"
LATEST_END = "<!-- latest-figures:end -->"


@dataclass
class Row:
    """One line of the table: the app's figure, the floor's, their ratio and the target."""

    key: str
    measure: str
    app: str = ""
    floor: str = ""
    ratio: str = ""
    target: str = ""
    met: bool | None = None  # None: no target, or not measured
    note: str = ""

    @property
    def result(self) -> str:
        if self.met is None:
            return "–" if not self.app.startswith("n/a") else "n/a"
        return "met" if self.met else "NOT MET"


@dataclass
class LoadStep:
    concurrency: int
    throughput: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class Report:
    title: str
    rows: list[Row] = field(default_factory=list)
    sizes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    load_steps: list[LoadStep] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def unavailable(self, key: str, measure: str, reason: str, target: str = "") -> Row:
        return self.add(Row(key, measure, app=f"n/a ({reason})", target=target))

    def markdown(self) -> str:
        lines = [f"### {self.title}", "",
                 "| # | measure | app | floor / baseline | ratio | target | result |",
                 "|---|---|---|---|---|---|---|"]
        for row in self.rows:
            cells = [row.key, row.measure + (f" ({row.note})" if row.note else ""), row.app,
                     row.floor or "–", row.ratio or "–", row.target or "–", row.result]
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
        if self.load_steps:
            lines += ["", "Mixed load, step by step:", "",
                      "| concurrency | requests/s | p50 ms | p99 ms | errors |",
                      "|---|---|---|---|---|"]
            for step in self.load_steps:
                lines.append(f"| {step.concurrency} | {step.throughput:.1f} | "
                             f"{step.p50_ms:.1f} | {step.p99_ms:.1f} | {step.errors} |")
        if self.sizes:
            lines += ["", "Sizes: " + "; ".join(self.sizes) + "."]
        if self.notes:
            lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def terminal(self) -> str:
        headers = ["#", "measure", "app", "floor", "ratio", "target", "result"]
        table = [[r.key, r.measure, r.app, r.floor or "-", r.ratio or "-", r.target or "-",
                  r.result] for r in self.rows]
        widths = [min(max(len(h), *(len(row[i]) for row in table)) if table else len(h), 60)
                  for i, h in enumerate(headers)]

        def fmt(cells: list[str]) -> str:
            return "  ".join(c[:w].ljust(w) for c, w in zip(cells, widths, strict=True))

        out = [self.title, fmt(headers), fmt(["-" * w for w in widths])]
        out += [fmt(row) for row in table]
        if self.sizes:
            out += ["", "Sizes: " + "; ".join(self.sizes)]
        return "\n".join(out)


def fmt_ms(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1f} ms"


def fmt_ratio(value: float) -> str:
    return "–" if math.isnan(value) or math.isinf(value) else f"{value:.2f}×"


def write_results(report: Report, *, name: str = "latest.md") -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / name
    path.write_text(report.markdown())
    return path


def update_readme(report: Report) -> None:
    """Keep the committed copy of the last run's table in README.md ("Latest figures")."""
    if not README.exists():
        return
    text = README.read_text()
    block = f"{LATEST_START}\n{report.markdown()}{LATEST_END}"
    pattern = re.compile(re.escape(LATEST_START) + ".*?" + re.escape(LATEST_END), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip() + "\n\n## Latest figures\n\n" + block + "\n"
    README.write_text(text)


def plot_latency_vs_load(steps: list[LoadStep], path: Path, *, title: str,
                         limit_ms: float = 200.0) -> Path | None:
    """p50/p99 latency (and throughput) against concurrency, so the knee is visible."""
    if not steps:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [s.concurrency for s in steps]
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    ax.plot(xs, [s.p50_ms for s in steps], marker="o", label="p50 latency")
    ax.plot(xs, [s.p99_ms for s in steps], marker="o", label="p99 latency")
    ax.axhline(limit_ms, color="grey", linestyle="--", linewidth=1,
               label=f"p99 target ({limit_ms:.0f} ms)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("latency (ms)")
    ax2 = ax.twinx()
    ax2.plot(xs, [s.throughput for s in steps], color="tab:green", marker="s",
             linestyle=":", label="throughput")
    ax2.set_ylabel("requests/s")
    handles = ax.get_legend_handles_labels()
    handles2 = ax2.get_legend_handles_labels()
    ax.legend(handles[0] + handles2[0], handles[1] + handles2[1], loc="upper left")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
