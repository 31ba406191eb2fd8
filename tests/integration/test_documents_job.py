"""Documents through the translation job on a local Ray."""

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

from tests.conftest import ROOT


def run_job(model, input_uri, output, *extra):
    from jobs.translate_corpus import main as translate

    return translate(["--input", input_uri, "--output", output, "--model", model, "--unit", "document",
                      "--cpus-per-actor", "1", "--actors", "1", "--batch-rows", "64", *extra])



def test_a_multi_paragraph_document_through_the_shipped_model(local_ray, tmp_path, capsys):
    doc = ("A man in a blue shirt is standing on a ladder. He is cleaning a window.\n\n"
           "Two dogs run across the grass.\n"
           "- A girl is laughing.\n"
           "- A boy plays with a ball.\n\n"
           "See https://example.com for more pictures.\n")
    root = tmp_path / "in"
    root.mkdir()
    pq.write_table(pa.table({"id": [1, 2], "source": [doc, "A dog runs."]}), root / "a.parquet")
    model = os.path.join(ROOT, "models", "multi30k-en-de")
    assert run_job(model, str(root), str(tmp_path / "out"), "--write-segments") == 0
    row = pq.read_table(tmp_path / "out" / "translations" / "a.parquet").to_pylist()[0]
    out = row["translation"]
    assert out.count("\n\n") == doc.count("\n\n") and out.count("\n") == doc.count("\n")
    lines = out.split("\n")
    assert lines[3].startswith("- ") and lines[4].startswith("- ") and "https://example.com" in lines[6]
    assert "Mann" in lines[0] and "Hund" in lines[2] and row["status"] == "ok"
    assert len(row["target_segments"]) == len(row["source_segments"]) == 7
    report = json.load(open(tmp_path / "out" / "report.json"))
    assert report["decode"]["unit"] == "document" and report["run"]["sentences"] == 8  # segments decoded
    out = capsys.readouterr().out  # documents and segments counted apart (issue 37)
    assert "translated 2 documents in 8 segments (0 documents already done) in 1 shards" in out
    assert "progress: 2/2 documents (100%)" in out and "status: 2 documents in the output: ok 2," in out
    assert "**2 documents.**" in open(tmp_path / "out" / "report.md").read()


def test_bad_documents_and_a_1mb_document_finish_with_a_status(local_ray, tiny_checkpoint, tmp_path):
    big = " ".join(["word"] * 200_000)  # 1 MB without a single sentence mark
    docs = [None, "", "   \n ", "no punctuation here at all", big, "Fine. Really fine."]
    root = tmp_path / "in"
    root.mkdir()
    pq.write_table(pa.table({"id": list(range(len(docs))), "source": docs}), root / "a.parquet")
    out = tmp_path / "out"
    fast = ["--beam-size", "1", "--max-len-a", "0", "--max-len-b", "2", "--actors", "2", "--max-tokens", "4000"]
    assert run_job(tiny_checkpoint, str(root), str(out), *fast) == 0
    rows = pq.read_table(out / "translations" / "a.parquet").to_pylist()
    assert [r["id"] for r in rows] == list(range(len(docs)))
    # At most 2 tokens per segment from a random model: every translated document holds a segment cut at
    # the length limit (which wins over split, issue 31).
    assert [r["status"] for r in rows] == ["empty", "empty", "empty", "length_limit", "length_limit", "length_limit"]
    assert rows[0]["translation"] == rows[1]["translation"] == rows[2]["translation"] == ""
    assert rows[4]["translation"]
    report = json.load(open(out / "report.json"))
    assert report["run"]["sentences"] >= len(big) // 2000  # cut into many segments, spread over the actors
    assert report["run"]["actor_peak_rss_mb"] < 2000
    # Resuming a finished output does nothing; the documents are kept as they are.
    assert run_job(tiny_checkpoint, str(root), str(out), *fast) == 0
    assert json.load(open(out / "report.json"))["run"]["sentences"] == 0


def test_html_and_markdown_documents_through_the_shipped_model(local_ray, tmp_path):
    from markdown_it import MarkdownIt

    page = ('<!DOCTYPE html>\n<html><head><title>A dog</title><style>p { color: red }</style></head>\n<body>\n'
            '<!-- kept --><h1>Two dogs run across the grass.</h1>\n<p>A man with a <a href="/x?a=1&amp;b=2">red '
            'hat</a> is standing on a ladder. <b>A girl is laughing.</b></p>\n<pre>  keep  </pre>\n'
            '<p translate="no">Brand text</p><img src="d.png" alt="A black dog">\n</body></html>\n')
    md = ("---\ntitle: x\n---\n# Two dogs run across the grass.\n\n- A man with a [red hat](/x \"t\") is "
          "standing.\n* A girl is **laughing**.\n\n```\nkeep me\n```\n")
    model = os.path.join(ROOT, "models", "multi30k-en-de")
    outputs = {}
    for fmt, docs in (("html", [page, "<p>" * 3]), ("markdown", [md, ""])):
        root = tmp_path / fmt
        root.mkdir()
        pq.write_table(pa.table({"id": [1, 2], "source": docs}), root / "a.parquet")
        out = tmp_path / f"out-{fmt}"
        assert run_job(model, str(root), str(out), "--format", fmt, "--write-segments") == 0
        outputs[fmt] = pq.read_table(out / "translations" / "a.parquet").to_pylist()
        assert json.load(open(out / "report.json"))["decode"]["format"] == fmt
    html_row, empty_row = outputs["html"]
    out = html_row["translation"]
    for kept in ['<!DOCTYPE html>\n<html><head><title>', "<style>p { color: red }</style>", "<!-- kept --><h1>",
                 '<a href="/x?a=1&amp;b=2">', "<pre>  keep  </pre>", '<p translate="no">Brand text</p>',
                 '<img src="d.png" alt="']:
        assert kept in out, kept
    assert "Hunde" in out and "Mann" in out and out.count("<b>") == out.count("</b>") == 1
    assert html_row["status"] == "ok" and "red hat" in html_row["source_segments"]  # the link's text alone
    assert empty_row["translation"] == "<p>" * 3 and empty_row["status"] == "ok"  # markup alone: kept as it is
    md_row = outputs["markdown"][0]
    tokens = MarkdownIt("commonmark").parse(md_row["translation"])
    assert [t.type for t in tokens] == [t.type for t in MarkdownIt("commonmark").parse(md)]
    assert md_row["translation"].startswith("---\ntitle: x\n---\n# ") and "](/x \"t\")" in md_row["translation"]
    assert "```\nkeep me\n```\n" in md_row["translation"] and "**" in md_row["translation"]
