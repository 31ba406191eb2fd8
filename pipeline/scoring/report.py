"""report.json and report.md, shared by the translation and scoring jobs.

report.json holds at least
    {"overall": {"sentences": N, "scores": {"bleu": {"score", "signature"}, "chrf": ..., "ter": ...}},
     "groups": {"<name>": <same shape>}}
with run statistics, configuration and confidence intervals beside them.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from model.storage import resolve
from pipeline.io import write_bytes_atomic
from pipeline.scoring.metrics import MetricOptions, make_metrics, score_block


def sum_stats(items: list[dict]) -> dict:
    """Sum per-group statistics dicts: sentences, status counts, null counts, metric sufficient statistics."""
    total = {"sentences": 0, "status": Counter(), "decoded_with": Counter(), "null_references": 0, "metrics": {}}
    flags: Counter = Counter()
    for s in items:
        total["sentences"] += s["sentences"]
        total["status"].update(s.get("status", {}))
        flags.update(s.get("flags", {}))
        total["decoded_with"].update(s.get("decoded_with", {}))
        total["null_references"] += s.get("null_references", 0)
        for name, vec in s.get("metrics", {}).items():
            acc = total["metrics"].get(name)
            total["metrics"][name] = np.asarray(vec, dtype=np.float64) + (acc if acc is not None else 0)
    total["status"] = dict(total["status"])
    total["decoded_with"] = dict(total["decoded_with"])
    if any("flags" in s for s in items):  # --quality-flags: rows per flag (pipeline/languages/flags.py)
        total["flags"] = dict(flags)
    return total


def group_entry(stats: dict, metrics: dict) -> dict:
    entry = score_block(metrics, stats.get("metrics", {}), stats["sentences"])
    if stats.get("status"):
        entry["status"] = dict(sorted(stats["status"].items()))
    if stats.get("decoded_with"):  # rows (segments in document mode) per precision they were decoded in
        entry["decoded_with"] = dict(sorted(stats["decoded_with"].items()))
    if "null_references" in stats and stats.get("metrics"):
        entry["null_references"] = stats["null_references"]
    if "flags" in stats:
        entry["flags"] = dict(stats["flags"])
    for reuse in ("duplicate_segments", "memory"):  # a shard's rows reused instead of decoded (pipeline/memory/)
        if reuse in stats:
            entry[reuse] = stats[reuse]
    return entry


def build_report(groups: dict[str, dict], metric_options: MetricOptions, **extra) -> dict:
    """groups: name -> summed statistics of that group. Extra keyword fields go in as they are."""
    metrics = make_metrics(metric_options)
    overall = sum_stats(list(groups.values()))
    return {
        "overall": group_entry(overall, metrics),
        "groups": {name: group_entry(stats, metrics) for name, stats in sorted(groups.items())},
        **extra,
    }


def language_pair_entries(shard_stats: dict[str, dict], metric_options: MetricOptions) -> dict[str, dict]:
    """Report entries per "source-target" language pair, summed over the shards. Each pair is scored with the
    BLEU tokenizer its shards' statistics were made with (the target language's), named in its signature."""
    from dataclasses import replace

    from pipeline.scoring.metrics import bleu_tokenize_for

    per_pair: dict[str, list[dict]] = {}
    for stats in shard_stats.values():
        for pair, entry in stats.get("pairs", {}).items():
            per_pair.setdefault(pair, []).append(entry)
    out = {}
    for pair, entries in sorted(per_pair.items()):
        target = entries[0].get("target", "")
        options = replace(metric_options, bleu_tokenize=bleu_tokenize_for(target, entries[0].get("bleu_tokenize",
                                                                                                 "auto")))
        out[pair] = group_entry(sum_stats(entries), make_metrics(options))
    return out


def _cell(score: dict) -> str:
    text = f"{score['score']:.2f}"
    if "bootstrap" in score:
        text += f" ± {score['bootstrap']['ci95_halfwidth']:.2f}"
    return text


def _fmt(x) -> str:
    return f"{x:,.2f}" if isinstance(x, float) else f"{x:,}" if isinstance(x, int) else str(x)


def header_lines(report: dict) -> list[str]:
    """What a reader needs first: the model, how it decoded, what was read and written, and when."""
    config, model, decode = report.get("config", {}), report.get("model"), report.get("decode")
    lines = []
    if model:
        card = f", card `{model['card']}`" if model.get("card") else ""
        ensemble = f", ensemble with {', '.join(f'`{u}`' for u in model['ensemble'])}" if model.get("ensemble") else ""
        lines.append(f"- Model: **{model.get('name') or model['uri']}** ({model.get('arch', '')}, "
                     f"`{model['uri']}`{card}{ensemble})")
    if decode:
        ngram = decode.get("no_repeat_ngram_size") or "off"
        lines.append(f"- Decoding: beam {decode['beam_size']}, {decode['precision']}, engine {decode['engine']}, "
                     f"n-best {decode['nbest']}, length penalty {decode['length_penalty']} (alpha "
                     f"{decode['alpha']:g}), max length {decode['max_len_a']:g} x source + {decode['max_len_b']}, "
                     f"no-repeat n-gram {ngram}, sources over {decode['max_source_tokens']} tokens "
                     f"{decode['long_policy']}, unit {decode['unit']}")
    for key in ("input", "output"):
        if config.get(key):
            lines.append(f"- {key.capitalize()}: `{config[key]}`")
    if report.get("created"):
        lines.append(f"- Made: {report['created']}")
    return lines + [""] if lines else []


def report_markdown(report: dict, title: str) -> str:
    lines = [f"# {title}", ""] + header_lines(report)
    overall = report["overall"]
    rows = "documents" if report.get("decode", {}).get("unit") == "document" else "sentences"
    lines.append(f"**{overall['sentences']:,} {rows}.**")
    if overall.get("status"):
        lines.append("Status: " + ", ".join(f"{k} {v:,}" for k, v in overall["status"].items()) + ".")
    if "flags" in overall:
        lines.append("Quality flags (rows): " + ", ".join(f"{k} {v:,}" for k, v in overall["flags"].items()) + ".")
    lines.append("")
    names = list(overall["scores"])
    if names:
        lines += [f"| | {rows} | " + " | ".join(n.upper() for n in names) + " |",
                  "|---|---:|" + "---:|" * len(names)]
        rows = [("**overall**", overall)] + list(report["groups"].items())
        rows += list(report.get("language_pairs", {}).items())
        rows += [(f"length {k}", v) for k, v in report.get("length_buckets", {}).items()]
        for name, entry in rows:
            cells = [_cell(entry["scores"][n]) if n in entry["scores"] else "" for n in names]
            lines.append(f"| {name} | {entry['sentences']:,} | " + " | ".join(cells) + " |")
        if any("bootstrap" in overall["scores"][n] for n in names):
            lines += ["", "± is the half-width of the 95% bootstrap confidence interval."]
        compared = [n for n in names if "compare" in overall["scores"][n]]
        if compared:
            col = overall["scores"][compared[0]]["compare"]["column"]
            lines += ["", f"## Paired comparison with `{col}`", "", "| | metric | system | compared | difference |"
                      " p-value |", "|---|---|---:|---:|---:|---:|"]
            for name, entry in rows[: 1 + len(report["groups"])]:
                for n in compared:
                    c, sc = entry["scores"][n]["compare"], entry["scores"][n]["score"]
                    lines.append(f"| {name} | {n.upper()} | {sc:.2f} | {c['score']:.2f} | {c['difference']:+.2f} | "
                                 f"{c.get('p_value', float('nan')):.4f} |")
        if report.get("decode", {}).get("unit") == "document":
            lines += ["", "Scores are document-level: each document is one segment, its whitespace normalised "
                      "(references are not assumed to be aligned with the sentences)."]
        lines += ["", "Signatures:", ""]
        lines += [f"- {n.upper()}: `{overall['scores'][n]['signature']}`" for n in names]
    else:
        lines.append("No reference column: no scores.")
    run = report.get("run")
    if run:
        lines += ["", "## Run", "", "| statistic | value |", "|---|---:|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in run.items() if not isinstance(v, (dict, list))]
        changes = run.get("input_changes")
        if changes:  # the translation job: committed shards whose input changed since were brought in line
            lines += ["", f"The input changed since its commit in {len(changes['shards'])} shard(s): "
                      f"{changes['added']:,} rows added and {changes['edited']:,} edited (translated), "
                      f"{changes['removed']:,} removed (dropped), {changes['kept']:,} kept."]
    return "\n".join(lines) + "\n"


def write_report(output_uri: str, report: dict, title: str, storage_options: dict | None = None) -> None:
    fs, root = resolve(output_uri, storage_options)
    write_bytes_atomic(fs, f"{root}/report.json", json.dumps(report, indent=2, sort_keys=False, default=_json).encode())
    write_bytes_atomic(fs, f"{root}/report.md", report_markdown(report, title).encode())


def _json(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON serializable: {type(x).__name__}")
