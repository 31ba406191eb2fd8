import gzip
import json

import pyarrow.parquet as pq
import pytest

from jobs.prepare_corpus import main as prepare_main
from jobs.train_tokenizer import main as tokenizer_main
from model.tokenizers import load_tokenizer_dir
from pipeline.io import read_table


def write(path, lines, gz=False, raw: bytes | None = None):
    data = raw if raw is not None else ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return str(path)


def test_text_pairs_to_shards_with_metadata(tmp_path, capsys):
    src = write(tmp_path / "a.en.gz", [f"sentence {i}" for i in range(25)], gz=True)
    tgt = write(tmp_path / "a.de.gz", [f"Satz {i}" for i in range(25)], gz=True)
    out = tmp_path / "out"
    assert prepare_main(["--source", src, "--target", tgt, "--output", str(out), "--rows-per-shard", "10",
                         "--metadata", "lang_pair=en-de"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    table = read_table(str(out))
    assert table.column_names == ["id", "source", "reference", "lang_pair"]
    assert table.num_rows == 25 and len(set(table.column("id").to_pylist())) == 25
    assert table.slice(24).to_pylist()[0] == {"id": "a.en-25", "source": "sentence 24", "reference": "Satz 24",
                                              "lang_pair": "en-de"}
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rows"] == 25


def test_misaligned_inputs_name_both_files_and_counts(tmp_path, capsys):
    src = write(tmp_path / "x.en", ["a", "b", "c"])
    tgt = write(tmp_path / "x.de", ["a", "b"])
    out = tmp_path / "out"
    assert prepare_main(["--source", src, "--target", tgt, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert src in err and tgt in err and "3 lines" in err and "has 2" in err
    assert not out.exists() or not list(out.rglob("*.parquet"))


def test_non_utf8_is_an_error_with_the_line_number(tmp_path, capsys):
    src = write(tmp_path / "bad.en", [], raw=b"fine\nalso fine\nbroken \xff\xfe here\n")
    tgt = write(tmp_path / "bad.de", ["a", "b", "c"])
    assert prepare_main(["--source", src, "--target", tgt, "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.en: line 3 is not valid UTF-8" in err


def test_empty_lines_are_counted_and_optionally_dropped(tmp_path, capsys):
    src = write(tmp_path / "e.en", ["one", "", "three", "four", "   "])
    tgt = write(tmp_path / "e.de", ["eins", "zwei", "", "vier", "fünf"])
    out = tmp_path / "keep"
    assert prepare_main(["--source", src, "--target", tgt, "--output", str(out)]) == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert stats["rows"] == 5 and stats["empty_source"] == 2 and stats["empty_reference"] == 1
    assert prepare_main(["--source", src, "--target", tgt, "--output", str(tmp_path / "drop"), "--drop-empty",
                         "--max-words", "5"]) == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert stats["rows"] == 2 and stats["dropped"] == {"empty_side": 3, "too_long": 0}


def test_tsv_with_extra_columns_and_refusal_to_overwrite(tmp_path, capsys):
    tsv = write(tmp_path / "c.tsv", ["hello\thallo\tnews", "bye\ttschüss\tchat"])
    out = str(tmp_path / "tsv")
    assert prepare_main(["--tsv", tsv, "--tsv-columns", "domain", "--output", out]) == 0
    assert read_table(out).column("domain").to_pylist() == ["news", "chat"]
    assert prepare_main(["--tsv", tsv, "--tsv-columns", "domain", "--output", out]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_train_tokenizer_samples_at_most_n(tmp_path, sample_corpus, capsys):
    out = str(tmp_path / "tok")
    assert tokenizer_main(["--input", sample_corpus, "--output", out, "--vocab-size", "300",
                           "--max-sentences", "120"]) == 0
    info = json.loads((tmp_path / "tok" / "tokenizer.json").read_text())
    assert info["sentences_seen"] == {"source": 300, "target": 300}
    assert info["sentences_sampled"] == {"source": 120, "target": 120}
    tok = load_tokenizer_dir(out)
    assert tok.joint and tok.decode_target(tok.encode_target(["Ein Hund rennt."])) == ["Ein Hund rennt."]


def test_train_tokenizer_separate_vocabularies_and_missing_column(tmp_path, sample_corpus, capsys):
    out = str(tmp_path / "sep")
    assert tokenizer_main(["--input", sample_corpus, "--output", out, "--vocab-size", "200", "--joint=false"]) == 0
    assert not load_tokenizer_dir(out).joint
    assert tokenizer_main(["--input", sample_corpus, "--output", out, "--target-column", "nope"]) == 2
    assert "missing column 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("shards", [1])
def test_shards_are_valid_parquet(tmp_path, shards):
    src = write(tmp_path / "s.en", ["x"])
    tgt = write(tmp_path / "s.de", ["y"])
    prepare_main(["--source", src, "--target", tgt, "--output", str(tmp_path / "o")])
    assert pq.read_table(tmp_path / "o" / "part-00000.parquet").num_rows == shards
