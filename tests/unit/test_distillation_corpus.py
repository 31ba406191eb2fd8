"""scripts/distillation_corpus.py: references and teacher translations, shuffled together into shards."""

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.io import read_table
from scripts.distillation_corpus import distillation_table, main


def _tables(n=40):
    sources = [f"source {i}" for i in range(n)]
    references = pa.table({"source": sources, "reference": [f"reference {i}" for i in range(n)]})
    status = ["ok"] * n
    status[3] = "error"
    translations = pa.table({"source": sources, "translation": [f"translation {i}" for i in range(n)],
                             "status": status})
    return references, translations


def test_every_source_comes_with_its_reference_and_its_ok_translation_shuffled():
    references, translations = _tables()
    table = distillation_table(references, translations, seed=1)
    pairs = list(zip(table["source"].to_pylist(), table["reference"].to_pylist(), strict=True))
    expected = {(f"source {i}", f"reference {i}") for i in range(40)}
    expected |= {(f"source {i}", f"translation {i}") for i in range(40) if i != 3}
    assert len(pairs) == 79 and set(pairs) == expected
    # shuffled: the first half is not just the references
    assert {t.split()[0] for _, t in pairs[:40]} == {"reference", "translation"}
    assert distillation_table(references, translations, seed=1).equals(table)
    assert not distillation_table(references, translations, seed=2).equals(table)


def test_main_writes_the_shards(tmp_path):
    references, translations = _tables()
    pq.write_table(references, tmp_path / "refs.parquet")
    pq.write_table(translations, tmp_path / "hyps.parquet")
    out = tmp_path / "out"
    assert main(["--references", str(tmp_path / "refs.parquet"), "--translations", str(tmp_path / "hyps.parquet"),
                 "--output", str(out), "--shards", "3"]) == 0
    assert len(list(out.glob("part-*.parquet"))) == 3
    assert read_table(str(out)).num_rows == 79
