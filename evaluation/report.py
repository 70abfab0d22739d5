"""`hnn eval`'s report: results.json, a Markdown table, and plots (matplotlib)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_report(results: dict, folder: str | Path) -> list[Path]:
    """results.json, results.md and PNG plots into ``folder``; returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=1))
    lines = [f"# hnn eval: split `{results['split']}`, k = {results['k']}, {results['seeds']} seed(s), "
             f"{results['epochs']} epochs, {results['seconds']} s", "",
             "| kind | bits | method | family P@10 | family R@10 | family F1@10 | family R-prec | family mAP "
             "| family top-1 | source P@10 | source R-prec | source mAP | source top-1 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in results["summary"]:
        def cell(name):
            value, spread = row[name], row[f"{name}_std"]
            if value is None:
                return "-"
            return f"{value:.3f}" + (f" ± {spread:.3f}" if results["seeds"] > 1 else "")
        lines.append(f"| {row['kind']} | {row['bits']} | {row['method']} | {cell('family_precision')} | "
                     f"{cell('family_recall')} | {cell('family_f1')} | {cell('family_r_precision')} | "
                     f"{cell('family_map')} | {cell('family_top1')} | {cell('source_precision')} | "
                     f"{cell('source_r_precision')} | {cell('source_map')} | {cell('source_top1')} |")
    held = [run for run in results["runs"] if "held_out_own_variants_in_top10" in run]
    if held:
        lines += ["", "Share of a held-out model's own variants among its top-10 (first seed, merged if run):", ""]
        for run in held:
            if run["seed"] == 0:
                shares = ", ".join(f"{m} {v:.2f}" for m, v in run["held_out_own_variants_in_top10"].items())
                lines.append(f"- {run['kind']} {run['bits']} bits {run['method']}: {shares}")
    (folder / "results.md").write_text("\n".join(lines) + "\n")
    return [folder / "results.json", folder / "results.md", *plot(results, folder)]


def plot(results: dict, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    rows = results["summary"]
    kinds = sorted({row["kind"] for row in rows})
    methods = sorted({row["method"] for row in rows})
    figure, axes = plt.subplots(len(kinds), 2, figsize=(10, 4 * len(kinds)), squeeze=False)
    for r, kind in enumerate(kinds):
        for c, metric in enumerate(("family_f1", "source_precision")):
            axis = axes[r][c]
            for method in methods:
                points = sorted((row["bits"], row[metric]) for row in rows
                                if row["kind"] == kind and row["method"] == method and row[metric] is not None)
                if points:
                    axis.plot(*zip(*points), marker="o", label=method)
            axis.set_title(f"{kind}: {metric.replace('_', ' ')} at k={results['k']}")
            axis.set_xlabel("bits")
            axis.set_ylim(0, 1.02)
            axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(folder / "metrics_vs_bits.png", dpi=90)
    written.append(folder / "metrics_vs_bits.png")

    top_bits = max(row["bits"] for row in rows)
    kind = "merged" if "merged" in kinds else kinds[0]
    chosen = [run for run in results["runs"] if run["bits"] == top_bits and run["kind"] == kind and run["seed"] == 0]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for c, level in enumerate(("family", "source")):
        for run in chosen:
            curve = [(p.get("recall"), p.get("precision")) for p in run["pr_curve"][level] if "recall" in p]
            if curve:
                axes[c].plot(*zip(*curve), marker=".", label=run["method"])
        axes[c].set_title(f"{kind}, {top_bits} bits: {level} precision-recall (k = 1..50)")
        axes[c].set_xlabel("recall")
        axes[c].set_ylabel("precision")
        axes[c].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(folder / "precision_recall.png", dpi=90)
    written.append(folder / "precision_recall.png")

    hnn_run = next((run for run in chosen if run["method"] == "hnn"), chosen[0] if chosen else None)
    if hnn_run:
        figure, axis = plt.subplots(figsize=(6, 4))
        for name, counts in hnn_run["histogram"].items():
            counts = np.array(counts, dtype=float)
            axis.bar(np.arange(len(counts)), counts / max(counts.sum(), 1), alpha=0.5, label=name.replace("_", " "))
        axis.set_title(f"{hnn_run['method']}, {kind}, {top_bits} bits: Hamming distance, query to database")
        axis.set_xlabel("Hamming distance")
        axis.set_ylabel("share of pairs")
        axis.legend()
        figure.tight_layout()
        figure.savefig(folder / "hamming_histogram.png", dpi=90)
        written.append(folder / "hamming_histogram.png")
    plt.close("all")
    return written
