"""HTML and Markdown documents (`--format html|markdown`): throughput against the same segments as sentence rows,
what the markup keeps, BLEU against the same captions translated as rows, and inline tag placement accuracy.

    python bench/markup.py --out bench/results/markup_cpu.json

Documents: 40 HTML pages and 40 Markdown files built from held-out Multi30k captions (test_2016_flickr), with
inline tags around caption words, links, lists, tables, headings, code, scripts, styles, comments and
`translate="no"` text. Each format runs through the job (`--unit document --format ...`), then exactly the
segments it sent to the model run as sentence rows (segments per actor-second, goal >= 0.9x), and the
captions run as rows once (BLEU: each document's visible text, against its German captions joined, as
document-level BLEU of both).

Placement, on validation captions (val), three sets where the right answer is known: one word of a small
dictionary (dog -> Hund, ...) in `<b>`, right if the tag wraps the one word of the translation starting with
its German stem (and at most two more); an adjective and noun pair of it in `<a>` (both words, at most two
more); the clause from "while" to the end of the sentence in `<i>`, right if the tag runs from "während" to
the last word. A case counts only where the model's translation holds the answer exactly once. Decoded in
process with the pipeline's stages (no Ray); placed as the job does ("job": the model actor's cross-attention
alignment where it is sure, else the marks' extra segments), by the extra segments alone (the job before
alignment, "alone"), and by proportional position alone; the offline alignment of two decoder layers
(`attention_spans`, every mark placed by it) for comparison.

    python bench/markup.py --skip documents   # placement only (~5 min on 2 cores); updates "placement" in --out
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

DATA = "/work/shared/data/multi30k"  # read in place (not copied into the repository)
MODEL = os.path.join(ROOT, "models", "multi30k-en-de")
STEMS = {"man": "Mann", "woman": "Frau", "dog": "Hund", "boy": "Junge", "girl": "Mädchen", "ball": "Ball",
         "street": "Straße", "water": "Wasser", "bike": "Fahrrad", "car": "Auto", "beach": "Strand", "grass": "Gras",
         "snow": "Schnee", "baby": "Baby", "horse": "Pferd", "building": "Gebäude", "hat": "Hut", "child": "Kind",
         "guitar": "Gitarre", "table": "Tisch", "tree": "Baum", "field": "Feld", "camera": "Kamera", "jacket": "Jacke",
         "helmet": "Helm", "dress": "Kleid", "boat": "Boot", "city": "Stadt", "window": "Fenster", "bridge": "Brücke",
         "river": "Fluss", "sand": "Sand", "hair": "Haar", "soccer": "Fußball", "microphone": "Mikrofon",
         "stage": "Bühne", "mountain": "Berg", "bench": "Bank", "glasses": "Brille", "umbrella": "Schirm",
         "dog's": "Hund", "kitchen": "Küche", "blue": "blau", "red": "rot", "green": "grün", "black": "schwarz",
         "white": "weiß", "yellow": "gelb", "young": "jung", "old": "alt", "two": "Zwei", "three": "Drei"}
KEPT_HTML = ["<style>p.note { color: #333 } /* <b>x</b> */</style>",
             "<script>if (a < b && b > c) { render('<p>hi</p>'); }</script>", "<!-- gallery: {n} -->",
             "<pre>for photo in photos:\n    show(photo)\n</pre>", '<p translate="no">Acme Photo Archive</p>',
             "<code>photo_{n}.jpg</code>"]
KEPT_MD = ["---\nid: {n}\nlayout: gallery\n---\n", "```python\nfor photo in photos:\n    show(photo)\n```\n",
           "`photo_{n}.jpg`", "(https://example.com/p/{n} \"Photo {n}\")", "![thumb](/t/{n}.png)"]


def kept(text: str, n: int) -> str:
    return text.replace("{n}", str(n))


def read(name: str, data: str) -> list[str]:
    with gzip.open(os.path.join(data, name), "rt", encoding="utf-8") as f:
        return [line.strip() for line in f]


def sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


def tag_a_word(rng: random.Random, text: str, open_: str, close: str) -> str:
    words = text.split(" ")
    i = rng.randrange(len(words))
    if not re.fullmatch(r"[A-Za-z]+", words[i]):
        return text
    words[i] = open_ + words[i] + close
    return " ".join(words)


def build_html(rng: random.Random, n: int, caps: list[int], en: list[str]) -> str:
    e = [html.escape(sentence(en[i]), quote=False) for i in caps]
    links = [f'<a href="/photo?id={n}&amp;k=2" title="Photo">', "</a>"]
    body = [f"<h1 class=\"title\">{e[0]}</h1>", kept(KEPT_HTML[2], n),
            f"<p class=\"note\">{tag_a_word(rng, e[1], '<b>', '</b>')} {tag_a_word(rng, e[2], *links)}</p>",
            f"<p>Open {kept(KEPT_HTML[5], n)} for {e[3]}</p>" if rng.random() < 0.3 else f"<p>{e[3]}</p>",
            "<ul>\n" + "\n".join(f"  <li>{tag_a_word(rng, c, '<em>', '</em>')}</li>" for c in e[4:7]) + "\n</ul>",
            f'<table>\n<tr><td>{e[7]}</td><td><span class="c">{e[8]}</span></td></tr>\n</table>',
            KEPT_HTML[3], KEPT_HTML[4], f'<p><img src="/img/{n}.jpg" alt="{html.escape(en[caps[9]])}"> {e[9]}</p>']
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Gallery</title>\n"
            f"{KEPT_HTML[0]}\n{KEPT_HTML[1]}\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


def build_markdown(rng: random.Random, n: int, caps: list[int], en: list[str]) -> str:
    e = [sentence(en[i]).replace("*", "").replace("_", " ") for i in caps]
    link = kept(KEPT_MD[3], n)
    return (kept(KEPT_MD[0], n) + f"# {e[0]}\n\n{tag_a_word(rng, e[1], '**', '**')} "
            f"{tag_a_word(rng, e[2], '[', ']' + link)}\n{e[3]}\n\n"
            + "".join(f"{m} {tag_a_word(rng, c, '_', '_')}\n" for m, c in zip("-*-", e[4:7], strict=True))
            + f"\n> {e[7]}\n\n| Photo | Caption |\n|---|---|\n| {kept(KEPT_MD[2], n)} | {e[8]} |\n\n"
            + KEPT_MD[1] + f"\n{kept(KEPT_MD[4], n)} {e[9]}\n")


def visible_text(doc: str, fmt: str) -> str:
    """The text a reader sees, as the captions hold it: markup, head, table headers (the Markdown tables'
    "Photo | Caption"), code, scripts, styles and translate="no" left out."""
    if fmt == "markdown":
        from markdown_it import MarkdownIt

        doc = MarkdownIt("commonmark").enable("table").render(re.sub(r"\A---\n.*?\n---\n", "", doc, flags=re.S))
    doc = re.sub(r"<head>.*?</head>|<thead>.*?</thead>|<(script|style|pre|code)\b.*?</\1>|<!--.*?-->"
                 r"|<p translate=\"no\">.*?</p>",
                 " ", doc, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", doc)).split())


def kept_ok(src: str, out: str, fmt: str, n: int) -> dict:
    """Markup kept: every kept region byte for byte; HTML: every tag with its attributes (less those translated)
    in order; Markdown: its block structure, link and image addresses, code."""
    regions = all(kept(k, n) in out for k in (KEPT_HTML if fmt == "html" else KEPT_MD) if kept(k, n) in src)
    if fmt == "html":
        from pipeline.documents.markup.html import tokens

        def tags(doc):
            return [re.sub(r"""\s(title|alt)=("[^"]*"|'[^']*')""", "", raw) for raw, kind, _ in tokens(doc)
                    if kind in ("start", "end", "startend")]

        structure = sorted(tags(src)) == sorted(tags(out)) and [t for t in tags(src) if not _inline(t)] == [
            t for t in tags(out) if not _inline(t)]
    else:
        structure = _md_structure(src) == _md_structure(out)
    return {"regions": regions, "structure": structure}


def _inline(tag: str) -> bool:
    return bool(re.match(r"</?(a|b|em|span|img|code)\b", tag))


def _md_structure(doc: str):
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(doc)
    inline = sorted((c.type, c.markup, str(c.attrs)) for t in tokens if t.type == "inline" for c in t.children
                    if c.type in ("link_open", "image", "code_inline", "strong_open", "em_open"))
    return [(t.type, t.markup, t.info, t.content if t.type == "fence" else "") for t in tokens
            if t.type != "inline"], inline


def run_job(corpus: str, out: str, args, *extra: str) -> dict:
    cmd = [sys.executable, os.path.join(ROOT, "jobs", "translate_corpus.py"), "--input", corpus, "--output", out,
           "--model", MODEL, "--actors", str(args.actors), "--cpus-per-actor", "1", "--beam-size",
           str(args.beam_size), "--metrics", "", *extra]
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "RAY_ADDRESS": "local"})
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    r = report["run"]
    return {"rows": report["overall"]["sentences"], "segments": r["sentences"], "seconds": r["seconds"],
            "wall_seconds": round(time.time() - t0, 1),
            "rows_per_second": round(report["overall"]["sentences"] / r["seconds"], 2),
            "segments_per_actor_second": r["sentences_per_actor_second"],
            "status": report["overall"].get("status", {})}


def table_rows(path: str, texts: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(path)
    pq.write_table(pa.table({"id": list(range(len(texts))), "source": texts}), os.path.join(path, "part-0.parquet"))


def translations(out: str) -> list[str]:
    import pyarrow.parquet as pq

    rows = sorted(pq.read_table(os.path.join(out, "translations")).to_pylist(), key=lambda r: r["id"])
    return [r["translation"] for r in rows]


def documents_bench(args, results: dict) -> None:
    from sacrebleu.metrics import BLEU

    from pipeline.documents.markup import split_html, split_markdown

    en, de = read("test_2016_flickr.en.gz", args.data), read("test_2016_flickr.de.gz", args.data)
    rng = random.Random(3)
    order = rng.sample(range(len(en)), 2 * args.docs * 10)
    builders = {"html": (build_html, split_html), "markdown": (build_markdown, split_markdown)}
    docs, caps = {}, {}
    for k, fmt in enumerate(builders):
        caps[fmt] = [order[(k * args.docs + n) * 10:(k * args.docs + n + 1) * 10] for n in range(args.docs)]
        docs[fmt] = [builders[fmt][0](rng, n, c, en) for n, c in enumerate(caps[fmt])]
    all_caps = [i for fmt in builders for c in caps[fmt] for i in c]
    with tempfile.TemporaryDirectory() as tmp:
        table_rows(os.path.join(tmp, "captions"), [sentence(en[i]) for i in all_caps])
        rows = run_job(os.path.join(tmp, "captions"), os.path.join(tmp, "o-captions"), args)
        by_caption = dict(zip(all_caps, translations(os.path.join(tmp, "o-captions")), strict=True))
        results["captions_as_rows"] = rows
        for fmt, (_, split) in builders.items():
            segments = [s for d in docs[fmt] for s in split(d).segments]
            table_rows(os.path.join(tmp, fmt), docs[fmt])
            table_rows(os.path.join(tmp, f"{fmt}-segments"), segments)
            mode = run_job(os.path.join(tmp, fmt), os.path.join(tmp, f"o-{fmt}"), args, "--unit", "document",
                           "--format", fmt)
            outs = translations(os.path.join(tmp, f"o-{fmt}"))
            seg_rows = run_job(os.path.join(tmp, f"{fmt}-segments"), os.path.join(tmp, f"o-{fmt}-s"), args)
            checks = [kept_ok(s, o, fmt, n) for n, (s, o) in enumerate(zip(docs[fmt], outs, strict=True))]
            refs = [" ".join(de[i] for i in c) for c in caps[fmt]]
            hyp_doc = [visible_text(o, fmt) for o in outs]
            hyp_rows = [" ".join(by_caption[i] for i in c) for c in caps[fmt]]
            bleu = BLEU()
            doc_bleu, row_bleu = bleu.corpus_score(hyp_doc, [refs]), bleu.corpus_score(hyp_rows, [refs])
            results[fmt] = {
                "documents": len(docs[fmt]), "segments": len(segments),
                "captions": sum(map(len, caps[fmt])), "document_mode": mode, "same_segments_as_rows": seg_rows,
                "segments_per_actor_second_vs_rows": round(
                    mode["segments_per_actor_second"] / seg_rows["segments_per_actor_second"], 2),
                "kept_regions_byte_for_byte": sum(c["regions"] for c in checks),
                "structure_kept": sum(c["structure"] for c in checks),
                "bleu_document_text": round(doc_bleu.score, 2), "bleu_captions_as_rows": round(row_bleu.score, 2),
                "bleu_signature": str(bleu.get_signature()),
                "example": outs[0][:1500]}
            print(fmt, json.dumps({k: v for k, v in results[fmt].items() if k != "example"}, indent=1), flush=True)


def _word(w: str) -> str:
    return w.strip(".,;:!?\"'")


def placement_cases(en: list[str], limit: int) -> list[tuple[str, str, tuple]]:
    """(kind, tagged HTML, what the answer is): a dictionary word, an adjective and noun pair (both in the
    dictionary, next to each other), or the clause from "while" to the end of the sentence."""
    rng = random.Random(5)
    cases = {"word": [], "phrase": [], "clause": []}
    for text in en:
        words = text.split(" ")
        low = [w.lower() for w in words]

        def tagged(i, j, name="b", words=words):
            return "<p>" + " ".join((f"<{name}>" if k == i else "") + html.escape(w, quote=False)
                                    + (f"</{name}>" if k == j else "") for k, w in enumerate(words)) + "</p>"

        hits = [i for i, w in enumerate(low) if w in STEMS and low.count(w) == 1]
        if hits:
            i = rng.choice(hits)
            cases["word"].append(("word", tagged(i, i), (STEMS[low[i]],)))
        pairs = [i for i in hits if i + 1 in hits]
        if pairs:
            i = rng.choice(pairs)
            cases["phrase"].append(("phrase", tagged(i, i + 1, "a"), (STEMS[low[i]], STEMS[low[i + 1]])))
        if low.count("while") == 1 and low.index("while") > 2:
            cases["clause"].append(("clause", tagged(low.index("while"), len(words) - 1, "i"), ("während",)))
    return [c for kind in cases.values() for c in kind[:limit]]


def judge(kind: str, out: str, plain: str, answer: tuple) -> bool | None:
    """Whether the tag wraps the known answer in the translation; None where the answer is not known (the
    model's translation does not hold each dictionary stem exactly once)."""
    words = [_word(w) for w in plain.split()]
    if kind == "clause":
        if [w.lower() for w in words].count("während") != 1:
            return None
        m = re.search(r"<i>(.*?)</i>", out, re.S)
        inside = [_word(w) for w in m.group(1).split()] if m else []
        return bool(inside) and inside[0].lower() == "während" and inside[-1] == words[-1]
    found = []
    for stem in answer:
        hits = [w for w in words if w.startswith(stem) or w.startswith(stem.capitalize())]
        if len(hits) != 1:
            return None
        found.append(hits[0])
    m = re.search(r"<[ab]>(.*?)</[ab]>", out, re.S)
    inside = [_word(w) for w in m.group(1).split()] if m else []
    return all(f in inside for f in found) and len(inside) <= len(found) + 2


def attention_spans(pairs: list[tuple[str, tuple[int, int], str]], layer: int) -> list[tuple[int, int] | None]:
    """Where Bergamot/Marian-style tag projection would put each mark: (source sentence, the mark's character
    span, translation) -> the translation's word range [first, last] whose words' cross-attention (one decoder
    layer, heads averaged, teacher-forced on the translation) peaks on the mark's source words; None if no
    word does. Offline, to compare decoder layers: the job reads the last layer's through
    `Transformer.cross_attention` (pipeline/stages/translate.py), and places only where it is sure."""
    import torch

    from model.architectures.transformer import MultiHeadAttention
    from model.formats import load_model

    loaded = load_model(MODEL)
    model, tok = loaded.model, loaded.tokenizer
    cross = model.decoder[layer].cross_attn
    seen: dict = {}
    original = MultiHeadAttention.attend_queries

    def spy(self, q, k, v, mask):
        if self is cross and q.size(2) > 1:
            w = q @ k.transpose(-1, -2) / q.size(-1) ** 0.5  # (B, H, T, S)
            if mask is not None:
                w = w.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else w + mask
            seen["w"] = w.softmax(-1).mean(1)[0]  # (T, S)
        return original(self, q, k, v, mask)

    def word_of(pieces: list[str]) -> list[int]:
        index, out = -1, []
        for piece in pieces:
            index += piece.startswith("▁") or index < 0
            out.append(index)
        return out

    from model.kernels import cpu_kernels

    spans = []
    kernels = cpu_kernels.apply_to
    MultiHeadAttention.attend_queries = spy
    cpu_kernels.apply_to = lambda tensor: False  # torch's attention, where the spy sees the weights
    try:
        for source, (a, b), translation in pairs:
            src, tgt = tok.encode_source([source])[0], tok.encode_target([translation])[0]
            with torch.no_grad():
                model(torch.tensor([src]), torch.tensor([[2] + tgt]))  # BOS, then the translation
            w = seen["w"][:len(tgt), :len(src) - 1]  # row t predicts piece t: over the source pieces (no EOS)
            src_word = word_of([tok.source.id_to_piece(i) for i in src[:-1]])
            tgt_word = word_of([tok.target.id_to_piece(i) for i in tgt])
            starts = [m.start() for m in re.finditer(r"\S+", source)]
            marked = {i for i, st in enumerate(starts) if a <= st < b}
            n_src, n_tgt = max(src_word) + 1, max(tgt_word) + 1
            by_word = torch.zeros(n_tgt, n_src)
            for t, tw in enumerate(tgt_word):
                for s_, sw in enumerate(src_word):
                    by_word[tw, sw] += w[t, s_]
            hits = [j for j in range(n_tgt) if int(by_word[j].argmax()) in marked]
            spans.append((min(hits), max(hits)) if hits else None)
    finally:
        MultiHeadAttention.attend_queries = original
        cpu_kernels.apply_to = kernels
    return spans


def _split_case(doc: str) -> tuple[str, str, str, str]:
    m = re.search(r"<p>(.*)<([abi])>(.*?)</\2>(.*)</p>", doc, re.S)
    return m.group(2), html.unescape(m.group(1)), html.unescape(m.group(3)), html.unescape(m.group(4))


def placement_bench(args, results: dict) -> None:
    """Tag placement accuracy on validation captions, in process (the pipeline's stages, no Ray)."""
    import pyarrow as pa

    from model.decoding import DecodeConfig
    from pipeline.columns import ALIGN, MARKED
    from pipeline.documents.markup import split_html
    from pipeline.stages import Detokenize, Tokenize, Translator

    cases = placement_cases(read("val.en.gz", args.data), args.placement)
    layouts = [split_html(doc) for _, doc, _ in cases]
    segments = [s for lay in layouts for s in lay.segments]
    marked = [m for lay in layouts for m in lay.marked]
    tokenize = Tokenize(MODEL, "source", 256, "split", {})
    translator = Translator(MODEL, DecodeConfig(beam_size=args.beam_size), "fp32", 24000, 1, {})
    detokenize = Detokenize(MODEL, 1, False, {})
    t0 = time.time()
    table = pa.table({"id": list(range(len(segments))), "source": segments, MARKED: pa.array(marked, pa.bool_())})
    out = detokenize(translator(tokenize(table)))
    done, aligns = out.column("translation").to_pylist(), out.column(ALIGN).to_pylist()
    seconds = time.time() - t0
    scores: dict = {}
    hows: dict = {}
    pos = 0
    for lay, (kind, _, answer) in zip(layouts, cases, strict=True):
        n = len(lay.segments)
        got, align = done[pos:pos + n], aligns[pos:pos + n]
        pos += n
        # The job: alignment where sure, else the marks' texts translated alone (Argos Translate's way); the
        # extra segments alone; or neither (where the words are).
        for method, alone, al in (("job", got, align), ("alone", got, None),
                                  ("proportional_only", got[:1] + [""] * (n - 1), None)):
            right = judge(kind, lay.fill(alone, al), got[0], answer)
            if right is None:
                continue
            score = scores.setdefault(method, {}).setdefault(kind, {"known": 0, "right": 0})
            score["known"] += 1
            score["right"] += right
            if method == "job":
                how = [m.how for p in lay.parts if hasattr(p, "segs") for m in p.segs[0].marks][0]
                hows.setdefault(kind, {}).setdefault(how, 0)
                hows[kind][how] += 1
    # Cross-attention alignment of the same translations (measured, not what the job does).
    known = [(kind, doc, answer, got) for (kind, doc, answer), got in zip(
        cases, _firsts(layouts, done), strict=True)]
    pairs = []
    for _, doc, _, got in known:
        _, pre, mid, post = _split_case(doc)
        pairs.append((pre + mid + post, (len(pre), len(pre) + len(mid)), got))
    for layer in (-2, -1):
        for (kind, doc, answer, got), span in zip(known, attention_spans(pairs, layer), strict=True):
            tag = _split_case(doc)[0]
            words = got.split()
            out = got if span is None else " ".join(
                (f"<{tag}>" if j == span[0] else "") + w + (f"</{tag}>" if j == span[1] else "")
                for j, w in enumerate(words))
            right = judge(kind, out, got, answer)
            if right is None:
                continue
            score = scores.setdefault(f"attention_layer{layer}", {}).setdefault(kind, {"known": 0, "right": 0})
            score["known"] += 1
            score["right"] += right
    for by_kind in scores.values():
        for score in by_kind.values():
            score["accuracy"] = round(score["right"] / max(1, score["known"]), 3)
        known = sum(s["known"] for s in by_kind.values())
        by_kind["all"] = {"known": known, "accuracy": round(sum(s["right"] for s in by_kind.values()) / known, 3)}
    results["placement"] = {"cases": len(cases), "segments": len(segments), "decode_seconds": round(seconds, 1),
                            "aligned_segments": sum(a is not None for a, m in zip(aligns, marked, strict=True) if m),
                            "marked_segments": sum(marked), "job_placed_by": hows, **scores}
    print("placement", json.dumps(results["placement"], indent=1), flush=True)


def parsers_bench(out: str) -> None:
    """Whether a tree parser gives a page back: lxml.html parsed and written again, on the unit tests' pages."""
    import lxml.html

    from tests.unit.test_markup_html import PAGES

    same = {}
    for name, page in PAGES.items():
        whole = "<html" in page.lower()
        tree = (lxml.html.document_fromstring(page) if whole
                else lxml.html.fragment_fromstring(page, create_parent="div"))
        text = lxml.html.tostring(tree, encoding="unicode")
        same[name] = (text if whole else text[len("<div>"):-len("</div>")]) == page
    result = {"lxml": lxml.__version__, "pages": len(PAGES), "byte_identical": sum(same.values()), "per_page": same}
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print("parsers", json.dumps(result), flush=True)


def _firsts(layouts, done: list[str]) -> list[str]:
    """Each case's sentence translation (the first of its segments)."""
    out, pos = [], 0
    for lay in layouts:
        out.append(done[pos])
        pos += len(lay.segments)
    return out


def main() -> int:
    from bench.machine import cpu_info

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DATA)
    p.add_argument("--docs", type=int, default=40, help="documents of each format")
    p.add_argument("--placement", type=int, default=300, help="tagged sentences of each kind for placement")
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--skip", choices=["documents", "placement"], default=None)
    p.add_argument("--parsers", action="store_true", help="only lxml's round trip of the test pages, to "
                   "bench/results/markup_parsers.json")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "markup_cpu.json"))
    args = p.parse_args()
    if args.parsers:
        parsers_bench(os.path.join(ROOT, "bench", "results", "markup_parsers.json"))
        return 0
    results = {"machine": cpu_info(), "config": {k: v for k, v in vars(args).items() if k not in ("data", "out")}}
    if args.skip == "documents" and os.path.exists(args.out):  # placement only: the documents' figures kept
        with open(args.out) as f:
            results = {**json.load(f), "placement_machine": results["machine"],
                       "placement_config": results["config"]}
    if args.skip != "placement":
        placement_bench(args, results)
    if args.skip != "documents":
        documents_bench(args, results)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
