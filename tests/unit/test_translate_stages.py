"""The translation job's stages called directly, without Ray."""

import os

import pyarrow as pa
import pytest

from model.decoding.beam import DecodeConfig, beam_search
from model.formats import load_checkpoint
from model.tokenizers import EOS_ID
from pipeline.columns import HYP_IDS, PIECES, ROW_STATS
from pipeline.output import RunStats
from pipeline.stages import Detokenize, Translator
from pipeline.stages.tokenize import Tokenize, split_pieces
from tests.conftest import ROOT

DECODE = DecodeConfig(beam_size=2, max_len_a=0.0, max_len_b=6)


@pytest.fixture(scope="module")
def stages(tiny_checkpoint):
    return (Tokenize(tiny_checkpoint, "source", max_source_tokens=12, long_policy="split", storage_options={}),
            Translator(tiny_checkpoint, DECODE, "fp32", max_tokens=200, torch_threads=1, storage_options={}),
            Detokenize(tiny_checkpoint, nbest=1, write_scores=True, storage_options={}))


LONG = "A man in a blue shirt is standing on a ladder. Two dogs run across the green grass and a girl laughs."
TABLE = pa.table({
    "id": ["a", "b", "c", "d", "e"],
    "source": ["A dog runs.", None, "   ", LONG, "Two girls."],
    "extra": [1, 2, 3, 4, 5],
})


def test_bad_sources_get_a_status_not_a_crash(stages):
    tok, tr, detok = stages
    tokenized = tok(TABLE)
    assert tokenized.column("status").to_pylist() == ["ok", "empty", "empty", "split", "ok"]
    out = detok(tr(tokenized))
    rows = {r["id"]: r for r in out.to_pylist()}
    # The random tiny model never ends a sentence: every decoded row is cut at its length limit (6 tokens),
    # which the model actor marks over Tokenize's ok and split.
    assert [rows[i]["status"] for i in "abcde"] == ["length_limit", "empty", "empty", "length_limit", "length_limit"]
    assert rows["b"]["translation"] == "" and rows["c"]["translation"] == ""
    assert rows["b"]["score"] is None and rows["a"]["score"] < 0
    assert out.column("id").to_pylist() == list("abcde")  # order and pass-through columns kept
    assert out.column("extra").to_pylist() == [1, 2, 3, 4, 5]
    assert PIECES not in out.column_names and HYP_IDS not in out.column_names


def test_split_pieces_fit_and_cover_the_sentence(stages):
    tok, _, _ = stages
    ids = tok.tokenizer.source.encode(LONG)
    pieces = tok(TABLE).column(PIECES).to_pylist()[3]
    assert len(pieces) > 1 and all(len(p) <= 12 and p[-1] == EOS_ID for p in pieces)
    assert [t for p in pieces for t in p[:-1]] == ids


def test_split_prefers_sentence_boundaries():
    dot = 9
    ids = [5, 5, 5, 5, 5, 5, dot, 5, 5, 5, 5, 5]
    pieces = split_pieces(ids, max_len=9, eos_id=3, boundary_ids=frozenset({dot}))
    assert pieces[0] == [5, 5, 5, 5, 5, 5, dot, 3]


def test_truncate_policy(tiny_checkpoint):
    tok = Tokenize(tiny_checkpoint, "source", max_source_tokens=8, long_policy="truncate", storage_options={})
    out = tok(TABLE)
    assert out.column("status").to_pylist()[3] == "truncated"
    assert len(out.column(PIECES).to_pylist()[3]) == 1 and len(out.column(PIECES).to_pylist()[3][0]) == 8


def test_translator_matches_plain_beam_search_in_any_batch(stages, tiny_checkpoint):
    tok, tr, _ = stages
    model = load_checkpoint(tiny_checkpoint).model
    tokenized = tok(TABLE)
    alone = beam_search(model, __import__("torch").tensor([tokenized.column(PIECES).to_pylist()[0][0]]), DECODE)
    out = tr(tokenized)
    assert out.column(HYP_IDS).to_pylist()[0][0] == alone[0][0].tokens
    # the same row in a different batch (reversed order, fewer rows) decodes the same
    out2 = tr(tokenized.take([4, 0]))
    assert out2.column(HYP_IDS).to_pylist()[1] == out.column(HYP_IDS).to_pylist()[0]


def test_nbest_columns(tiny_checkpoint):
    tok = Tokenize(tiny_checkpoint, "source", 64, "split", {})
    tr = Translator(tiny_checkpoint, DecodeConfig(beam_size=3, nbest=3, max_len_b=4), "fp32", 500, 1, {})
    out = Detokenize(tiny_checkpoint, nbest=3, write_scores=False, storage_options={})(tr(tok(TABLE.slice(0, 1))))
    row = out.to_pylist()[0]
    assert len(row["nbest"]) == 3 and row["nbest"][0] == row["translation"]
    assert row["nbest_scores"] == sorted(row["nbest_scores"], reverse=True)


@pytest.mark.parametrize("stage, column", [(Tokenize, "source"), (Detokenize, HYP_IDS)])
def test_missing_input_column_is_named(tiny_checkpoint, stage, column):
    udf = (stage(tiny_checkpoint, "source", 64, "split", {}) if stage is Tokenize
           else stage(tiny_checkpoint, 1, False, {}))
    with pytest.raises(KeyError, match=repr(column)):
        udf(pa.table({"other": ["x"]}))


def test_fp16_on_cpu_is_refused(tiny_checkpoint):
    with pytest.raises(ValueError, match="fp16 needs a GPU"):
        Translator(tiny_checkpoint, DECODE, "fp16", 100, 1, {})


def test_the_plan_decides_the_device_not_the_node(tiny_checkpoint, monkeypatch):
    """A CPU actor on a GPU node decodes on the CPU (int8 included): CUDA being visible is not a
    reservation. A GPU actor that sees no CUDA device fails with one line naming why."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cpu = Translator(tiny_checkpoint, DECODE, "int8", 100, 1, {}, gpus_per_actor=0.0)
    assert cpu.device.type == "cpu" and cpu.max_tokens == 100
    assert cpu(Tokenize(tiny_checkpoint, "source", 64, "split", {})(TABLE)).num_rows == TABLE.num_rows
    assert Translator(tiny_checkpoint, DECODE, "fp32", 0, 1, {}).max_tokens == 24000  # the CPU default
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="reserved 0.5 GPU but sees no CUDA device"):
        Translator(tiny_checkpoint, DECODE, "bf16", 0, 1, {}, gpus_per_actor=0.5)


@pytest.mark.gpu
def test_bf16_and_fp16_decoding_on_gpu(tiny_checkpoint):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    tokenized = Tokenize(tiny_checkpoint, "source", 64, "split", {})(TABLE)
    for precision in ("bf16", "fp16"):
        actor = Translator(tiny_checkpoint, DECODE, precision, 0, 1, {}, gpus_per_actor=0.5)
        assert actor.device.type == "cuda"
        # The budget was measured on the GPU: a positive price per token, within half the GPU's memory.
        assert actor.budget.bytes_per_token > 0 and actor.max_tokens == actor.budget.budget > 0
        assert actor.budget.available <= torch.cuda.mem_get_info()[1] / 2
        out = actor(tokenized)
        assert out.num_rows == TABLE.num_rows


def test_an_ensemble_of_the_same_model_translates_like_the_model(stages, tiny_checkpoint):
    tok, tr, _ = stages
    ens = Translator(tiny_checkpoint, DECODE, "fp32", max_tokens=200, torch_threads=1, storage_options={},
                     ensemble_uris=(tiny_checkpoint,))
    tokenized = tok(TABLE)
    assert ens(tokenized).column(HYP_IDS).to_pylist() == tr(tokenized).column(HYP_IDS).to_pylist()


def test_int8_decoding_translates_like_fp32_with_the_shipped_model():
    """int8 linear layers (CPU): the shipped model's translations of sample sentences barely move."""
    import os

    import sacrebleu

    from pipeline.io import read_table

    root = ROOT
    model, sample = os.path.join(root, "models", "multi30k-en-de"), read_table(os.path.join(root, "samples",
                                                                                             "multi30k-en-de"))
    n = 60
    table = pa.table({"id": list(range(n)), "source": sample.column("source").to_pylist()[:n]})
    refs = sample.column("reference").to_pylist()[:n]
    decode = DecodeConfig(beam_size=5)
    tokenized = Tokenize(model, "source", 256, "split", {})(table)
    detok = Detokenize(model, nbest=1, write_scores=False, storage_options={})
    out = {p: detok(Translator(model, decode, p, 12000, 2, {})(tokenized)).column("translation").to_pylist()
           for p in ("fp32", "int8")}
    same = sum(a == b for a, b in zip(out["fp32"], out["int8"], strict=True))
    bleu = {p: sacrebleu.corpus_bleu(t, [refs]).score for p, t in out.items()}
    assert same >= 0.7 * n, same  # most sentences come out identical (55 of these 60 here)
    assert abs(bleu["int8"] - bleu["fp32"]) < 1.5, bleu
    assert bleu["int8"] > 30, bleu


def test_int8_is_refused_on_gpu_actors():
    from jobs.translate_corpus import TranslateConfig, hardware_for
    from pipeline.settings import TranslationSettings

    cfg = TranslateConfig(input="x", output="y", translation=TranslationSettings(precision="int8"))
    assert hardware_for(cfg, gpus=0).translation.precision == "int8"
    with pytest.raises(ValueError, match="int8 is for CPU actors"):
        hardware_for(cfg, gpus=1)


def test_cpu_clusters_get_a_pool_of_one_thread_actors_that_fits_their_nodes():
    from jobs.cli import parse_config
    from jobs.translate_corpus import TranslateConfig, hardware_for
    from pipeline.settings import ClusterView

    def resolved(argv, cluster):
        c = hardware_for(parse_config(TranslateConfig, argv), cluster=cluster).compute
        return c.actors, c.min_actors, c.max_actors, c.torch_threads

    one = lambda cpus: ClusterView.of(0, cpus)  # noqa: E731
    # 1.25 CPUs stay for the read, tokenize, detokenize, write and commit stages (a quarter each).
    assert resolved([], one(16)) == (14, 14, 14, 1)
    assert resolved([], one(4)) == (2, 2, 2, 1)  # a 2-core machine's local instance (2 cores + 2 slots)
    assert resolved([], one(1)) == (1, 1, 1, 1)
    assert resolved(["--cpus-per-actor", "4"], one(16)) == (3, 3, 3, 4)
    assert resolved(["--actors", "2"], one(16))[0] == 2
    assert resolved(["--max-actors", "6"], one(16)) == (6, 6, 6, 1)
    assert resolved([], ClusterView.of(4, 64)) == (0, 1, 4, 1)  # GPU clusters: one autoscaled actor per GPU


@pytest.mark.parametrize("nodes, argv, actors", [
    ((2, 2), [], 2),  # a CPU-less head (no entry) and two 2-CPU workers: one actor per node
    ((1, 1), [], 1),  # one node's CPU for the actor, the other's for the stages
    ((1, 3), [], 2),  # uneven nodes
    ((4, 4), [], 6),
    ((1, 1, 1, 1), [], 2),
    ((2, 2), ["--cpus-per-actor", "2"], 1),  # 4 CPUs, but the stages need some of one node
    ((3, 1), ["--cpus-per-actor", "2"], 1),  # 2 CPUs free across two nodes do not hold an actor of 2
    ((3, 3), ["--cpus-per-actor", "2"], 2),
])
def test_the_cpu_pool_is_counted_per_node(nodes, argv, actors):
    """An actor cannot span nodes: the pool is what the nodes hold one by one, less the stages' CPUs."""
    from jobs.cli import parse_config
    from jobs.translate_corpus import TranslateConfig, hardware_for
    from pipeline.settings import ClusterView, cpu_actors_that_fit

    cfg = hardware_for(parse_config(TranslateConfig, argv), cluster=ClusterView(node_cpus=nodes))
    assert cfg.compute.actors == actors
    c = cfg.compute
    fit = cpu_actors_that_fit(nodes, c.cpus_per_actor, c.stage_cpus)
    assert max(1, fit) == actors  # one actor at least; on (1, 1) the stages share the other node's CPU
    if fit:
        # Whatever node the actors land on, the fractional stages find room: every node's leftover is a
        # whole number of quarter CPUs and the total leftover holds them.
        assert sum(nodes) - actors * c.cpus_per_actor >= c.stage_cpus


def test_a_pool_grows_to_what_the_autoscaler_can_add_and_gpus_that_scale_from_zero_are_asked_for():
    """Nightly clusters start with no GPU node up: the job asks for GPU actors from the autoscaler's node
    types, in bf16, the same every night; CPU pools may grow onto nodes the autoscaler adds."""
    from jobs.cli import parse_config
    from jobs.translate_corpus import TranslateConfig, hardware_for
    from pipeline.settings import ClusterView

    cold = ClusterView(node_cpus=(2,), gpus=0, max_gpus=8, source="autoscaler")
    cfg = hardware_for(parse_config(TranslateConfig, []), cluster=cold)
    c = cfg.compute
    assert (c.gpus_per_actor, c.min_actors, c.max_actors, cfg.translation.precision) == (1.0, 1, 8, "bf16")
    warm = ClusterView(node_cpus=(2, 4, 4), gpus=2, max_gpus=8, source="autoscaler")
    assert hardware_for(parse_config(TranslateConfig, []), cluster=warm).translation == cfg.translation
    cpu_only = ClusterView(node_cpus=(2,), max_node_cpus=(0, 2, 2, 2))
    c = hardware_for(parse_config(TranslateConfig, []), cluster=cpu_only).compute
    assert (c.gpus_per_actor, c.actors, c.min_actors, c.max_actors) == (0.0, 0, 1, 4)


def test_the_fingerprint_keeps_precision_as_asked():
    """--precision auto is fingerprinted as "auto": a re-run of the same command on other hardware resumes;
    an explicit precision is kept as given. Outputs recorded before hold the resolved value and resume too."""
    from jobs.cli import parse_config
    from jobs.translate_corpus import TranslateConfig
    from pipeline.output.layout import _same_setting

    assert parse_config(TranslateConfig, []).translation.fingerprint()["precision"] == "auto"
    assert parse_config(TranslateConfig, ["--precision", "bf16"]).translation.fingerprint()["precision"] == "bf16"
    assert _same_setting("precision", "bf16", "auto") and not _same_setting("precision", "auto", "bf16")
    assert not _same_setting("precision", "fp32", "bf16") and not _same_setting("beam_size", 4, 5)


def test_the_no_repeat_guard_is_part_of_the_fingerprint_and_older_outputs_resume(tmp_path):
    """--no-repeat-ngram-size changes translations: a resumed output keeps it. An output started before the
    setting existed was decoded without the guard: a run with it off (the default) resumes it."""
    import json

    from jobs.cli import parse_config
    from jobs.translate_corpus import TranslateConfig
    from model.storage import resolve
    from pipeline.io import InputError
    from pipeline.output import OutputLayout, claim_output

    def fingerprint(*flags):
        return parse_config(TranslateConfig, list(flags)).translation.fingerprint()

    assert fingerprint()["no_repeat_ngram_size"] == 0 and fingerprint("--no-repeat-ngram-size", "3")[
        "no_repeat_ngram_size"] == 3
    fs, root = resolve(str(tmp_path / "out"))
    layout = OutputLayout(root)
    claim_output(fs, layout, fingerprint("--no-repeat-ngram-size", "3"))
    claim_output(fs, layout, fingerprint("--no-repeat-ngram-size", "3"))  # the same settings resume
    with pytest.raises(InputError, match=r"other settings \(no_repeat_ngram_size\)"):
        claim_output(fs, layout, fingerprint())
    older = {k: v for k, v in fingerprint().items() if k != "no_repeat_ngram_size"}
    fs.pipe_file(layout.run_file, json.dumps(older).encode())
    claim_output(fs, layout, fingerprint())
    with pytest.raises(InputError, match="no_repeat_ngram_size"):
        claim_output(fs, layout, fingerprint("--no-repeat-ngram-size", "4"))


@pytest.mark.parametrize("gpus, share, actors", [(1, 0.1, 10), (1, 0.2, 5), (0.3, 0.1, 3), (2, 0.5, 4), (1, 0.3, 3),
                                                 (3, 1, 3), (1, 0.7, 1), (7, 0.35, 20)])
def test_fractional_gpus_per_actor_count_every_actor_that_fits(gpus, share, actors):
    from jobs.cli import parse_config
    from jobs.translate_corpus import TranslateConfig, hardware_for
    from pipeline.settings import actors_for_gpus

    assert actors_for_gpus(gpus, share) == actors
    cfg = parse_config(TranslateConfig, ["--gpus-per-actor", str(share)])
    assert hardware_for(cfg, gpus, 16).compute.max_actors == actors


def test_batch_sizes_follow_the_device_unless_set():
    from jobs.cli import parse_config
    from jobs.translate_corpus import TranslateConfig, hardware_for

    def sizes(argv, gpus):
        c = hardware_for(parse_config(TranslateConfig, argv), gpus, 16).compute
        return c.batch_rows, c.max_tokens

    assert sizes([], gpus=0) == (1024, 24000)
    assert sizes([], gpus=2) == (8192, 0)  # 0: each GPU actor measures its budget from its memory
    assert sizes(["--batch-rows", "500", "--max-tokens", "9000"], gpus=2) == (500, 9000)


def test_ensemble_members_must_share_the_source_vocabulary(tmp_path, tiny_checkpoint):
    """Same target SentencePiece model, another source one: the ensemble would feed one model ids it
    never saw, so it is refused naming the source side."""
    import torch

    from model.formats import save_checkpoint
    from model.tokenizers import Tokenizer, train_sentencepiece
    from tests.helpers import tiny_transformer

    base = load_checkpoint(tiny_checkpoint).tokenizer
    other_source = train_sentencepiece([LONG, "A dog runs.", "Two girls."] * 30, vocab_size=40)
    tok = Tokenizer(other_source, base.source_bytes)
    torch.manual_seed(1)
    model = tiny_transformer(share_embeddings=False, tie_output=False, src_vocab_size=tok.src_vocab_size,
                             tgt_vocab_size=tok.tgt_vocab_size)
    save_checkpoint(str(tmp_path / "other"), model, tok)
    with pytest.raises(ValueError, match="another source vocabulary"):
        Translator(tiny_checkpoint, DECODE, "fp32", 200, 1, {}, ensemble_uris=(str(tmp_path / "other"),))


def test_row_statistics_count_what_was_decoded(stages, tiny_checkpoint):
    """Truncated rows count the tokens fed, not their full length; split rows count one EOS per piece."""
    tok, tr, _ = stages
    full = len(tok.tokenizer.source_ids([LONG])[0])
    split = tok(TABLE)
    pieces = split.column(PIECES).to_pylist()[3]
    out = tr(split)
    row = out.column(ROW_STATS).to_pylist()[3]
    assert row["source_tokens"] == full + len(pieces) == sum(len(p) for p in pieces)
    hyps = out.column(HYP_IDS).to_pylist()[3][0]
    assert row["target_tokens"] == len(hyps) + len(pieces)  # each piece's hypothesis ended in EOS

    truncated = Tokenize(tiny_checkpoint, "source", max_source_tokens=8, long_policy="truncate",
                         storage_options={})(TABLE)
    stats = RunStats.of_rows(tr(truncated))
    assert tr(truncated).column(ROW_STATS).to_pylist()[3]["source_tokens"] == 8
    assert stats.source_tokens <= stats.padded_source_tokens  # padding efficiency can never exceed 1
    assert truncated.column("status").to_pylist()[3] == "truncated"
    assert stats.sentences == 5 and stats.status == {"length_limit": 3, "empty": 2}  # (the random model never ends)


def test_the_cpu_stages_never_import_torch(tmp_path):
    """Tokenize, Detokenize and the write stage run in CPU actors and tasks: importing torch there would
    cost each ~200 MB and seconds of start-up for nothing."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import sys\n"
            "from pipeline.stages.tokenize import Tokenize\n"
            "from pipeline.stages.detokenize import Detokenize\n"
            "from pipeline.stages.write import write_parts\n"
            "from pipeline.output.commit import commit_shard\n"
            "from pipeline.documents.units import DocumentUnit\n"
            f"Tokenize({ROOT + '/models/multi30k-en-de'!r}, 'source', 256, 'split', {{}})\n"
            f"Detokenize({ROOT + '/models/multi30k-en-de'!r}, 1, False, {{}})\n"
            "DocumentUnit().explode('id', 'source')\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize("asked, streams, threads", [(0, 2, 1), (1, 1, 2)])
def test_a_cpu_actor_of_two_threads_decodes_two_batches_at_once_by_default(tiny_checkpoint, asked, streams,
                                                                           threads):
    import torch

    before = torch.get_num_threads()
    try:
        actor = Translator(tiny_checkpoint, DECODE, "fp32", max_tokens=200, torch_threads=2, storage_options={},
                           cpu_streams=asked)
        assert (actor.streams, torch.get_num_threads()) == (streams, threads)
        table = Tokenize(tiny_checkpoint, "source", max_source_tokens=12, long_policy="split",
                         storage_options={})(TABLE)
        one = Translator(tiny_checkpoint, DECODE, "fp32", max_tokens=200, torch_threads=1, storage_options={})
        assert actor(table).column(HYP_IDS).to_pylist() == one(table).column(HYP_IDS).to_pylist()
    finally:
        torch.set_num_threads(before)


# --- translations cut at the length limit (issue 31) ----------------------------------------------------

SHIPPED = os.path.join(ROOT, "models", "multi30k-en-de")
COUNT = " ".join(str(i) for i in range(1, 21))  # the shipped model: "Zwei 8 8 8 8 ..." to the length limit
OOH = "Oooooooooooooooooooooh!"  # beam 5: "Auf einem „Coooooo Toooo..." to the limit; greedy "I I I I ..."
FINE = "A man rides a bike."
TEENS = " ".join(str(i) for i in range(11, 21)) + " and a man rides a red bike down the street."


def shipped_rows(sources, decode, max_source_tokens=256, long_policy="split", **translator):
    table = pa.table({"id": list(range(len(sources))), "source": sources})
    tokenized = Tokenize(SHIPPED, "source", max_source_tokens, long_policy, {})(table)
    out = Translator(SHIPPED, decode, "fp32", 24000, 1, {}, **translator)(tokenized)
    return Detokenize(SHIPPED, 1, False, {})(out)


@pytest.mark.parametrize("beam", [1, 5])
def test_translations_cut_at_the_length_limit_get_their_own_status(beam):
    out = shipped_rows([COUNT, OOH, FINE], DecodeConfig(beam_size=beam))
    rows = out.to_pylist()
    assert [r["status"] for r in rows] == ["length_limit", "length_limit", "ok"]
    assert rows[0]["translation"].startswith("Zwei 8 8 8 8")  # the translation is kept
    assert rows[2]["translation"] == "Ein Mann fährt auf einem Fahrrad."
    assert RunStats.of_rows(out).status == {"length_limit": 2, "ok": 1}  # what the report sums


def test_an_ensemble_cut_at_the_length_limit_says_so():
    out = shipped_rows([COUNT, FINE], DecodeConfig(beam_size=2), ensemble_uris=(SHIPPED,))
    assert out.column("status").to_pylist() == ["length_limit", "ok"]


@pytest.mark.parametrize("policy", ["split", "truncate"])
def test_a_cut_source_whose_piece_hit_the_length_limit_is_length_limit(policy):
    """length_limit wins over split and truncated: the translation holds a loop, which only this status shows
    (that a source was cut follows from its length and --max-source-tokens)."""
    out = shipped_rows([TEENS, FINE], DecodeConfig(beam_size=5), max_source_tokens=20, long_policy=policy)
    assert out.column("status").to_pylist() == ["length_limit", "ok"]


def test_the_no_repeat_guard_ends_the_character_loop_of_the_shipped_model():
    out = shipped_rows([OOH, FINE], DecodeConfig(beam_size=5, no_repeat_ngram_size=3))
    assert out.column("status").to_pylist() == ["ok", "ok"]
    assert "ooooo" not in out.column("translation").to_pylist()[0]


def test_the_stages_declare_their_columns_and_the_plan_checks_the_chain_once():
    from pipeline.columns import PATH, StageColumns, check_stage_chain
    from pipeline.inputs import Columns
    from pipeline.plan import ModelSpec, PipelinePlan, stage_columns
    from pipeline.settings import ComputeConfig, TranslationSettings

    def plan(**settings):
        return PipelinePlan("out", Columns("id", "text", None), {}, {}, {}, ModelSpec("m"),
                            TranslationSettings(precision="fp32", **settings), ComputeConfig())

    for p in (plan(), plan(unit="document"), plan(target_lang_column="tgt"), plan(decode=DecodeConfig(nbest=3))):
        check_stage_chain([PATH, "id", "text", *p.translation.languages.columns], stage_columns(p))
    # A stage reading what nothing provides is named before anything runs.
    with pytest.raises(ValueError, match="the tokenize stage reads \\['text'\\]"):
        check_stage_chain([PATH, "id"], stage_columns(plan()))
    with pytest.raises(ValueError, match="detokenize stage reads \\['__hyp_ids'"):
        check_stage_chain([PATH, "id", "text"], [s for s in stage_columns(plan()) if s.stage != "translate"])
    with pytest.raises(KeyError, match="input has no column 'b'"):
        StageColumns("x", ("a", "b")).check(pa.table({"a": [1]}))


def test_the_pool_and_its_calls_are_sized_to_the_input():
    """Every model actor the pool starts gets a call: the 300-row sample on two actors goes in two calls of
    150, not one of 1,024 for one actor while the other loads the model for nothing; a fixed pool reports
    its size as its minimum and maximum too."""
    from jobs.cli import parse_config
    from jobs.translate_corpus import TranslateConfig, hardware_for
    from pipeline.settings import ClusterView, fit_to_input

    def sized(argv, rows, cluster=None):
        cluster = cluster or ClusterView.of(0, 4)
        c = fit_to_input(hardware_for(parse_config(TranslateConfig, argv), cluster=cluster).compute, rows)
        return c.actors, c.min_actors, c.max_actors, c.batch_rows

    assert sized([], 300) == (2, 2, 2, 150)
    assert sized([], 1) == (1, 1, 1, 1)
    assert sized([], 1_000_000) == (2, 2, 2, 1024)
    assert sized(["--actors", "3"], 300) == (3, 3, 3, 100)
    assert sized(["--actors", "2", "--max-actors", "1"], 10_000) == (2, 2, 2, 1024)
    assert sized([], 0) == (2, 2, 2, 1024)  # nothing to translate: left as it is
    gpus = ClusterView(node_cpus=(8,), gpus=0, max_gpus=8, source="autoscaler")
    assert sized([], 20_000, gpus) == (0, 1, 3, 8192)  # an autoscaled pool grows to no more actors than calls
    assert sized([], 5_000_000, gpus) == (0, 1, 8, 8192)


def test_a_document_run_is_sized_to_the_segments_its_documents_hold(tmp_path):
    """Documents: the model actors see segments, so the pool and its calls are sized to the segments the
    pending documents are estimated to hold (their reader, on a sample of the first pending shard), not to
    the documents: 40 pages of 3 sentences and a Markdown list on two actors go in two calls of ~100
    segments, not one call of 120 to one actor while the other idles. Done documents are left out."""
    import fsspec
    import pyarrow.parquet as pq

    from jobs.cli import parse_config
    from jobs.translate_corpus import Plan, TranslateConfig, fitted_to_input, hardware_for
    from pipeline.inputs.shards import Columns, Shard
    from pipeline.output.resume import ShardState
    from pipeline.settings import ClusterView

    page = "# A title\n\nA man runs. A dog barks. Two girls play.\n\n- one item\n- another item\n"
    path = str(tmp_path / "docs.parquet")
    pq.write_table(pa.table({"id": list(range(40)), "text": [page] * 40}), path)
    plan = Plan(fsspec.filesystem("file"), [Shard(path, "docs.parquet", 40)], Columns("id", "text", None), None, [])

    def sized(argv, states):
        cfg = hardware_for(parse_config(TranslateConfig, ["--source-column", "text", "--unit", "document", *argv]),
                           cluster=ClusterView.of(0, 4))
        c = fitted_to_input(cfg, plan, states).compute
        return c.actors, c.batch_rows

    assert sized(["--format", "markdown"], [ShardState(False)]) == (2, 120)  # 6 segments a page
    assert sized(["--format", "text"], [ShardState(False)]) == (2, 120)  # 3 sentences, a title, 2 items
    assert sized(["--format", "markdown"], [ShardState(False, set(range(30)))]) == (2, 30)  # 10 pending
    assert sized(["--format", "markdown"], [ShardState(True)]) == (2, 1024)  # nothing pending: as it is


def test_marked_rows_get_the_attention_of_their_translation_and_a_word_alignment(stages, tiny_checkpoint):
    """--format html|markdown: sentences with inline tags (MARKED) come back with the model's cross-attention
    (target pieces x source pieces, no EOS), which the detokenize stage turns into one source word per word of
    the translation (pipeline/documents/markup/tags.py places the tags by it)."""
    from pipeline.columns import ALIGN, ATTENTION, MARKED

    tok, tr, _ = stages
    detok = Detokenize(tiny_checkpoint, nbest=1, write_scores=True, storage_options={}, source_column="source",
                       marked=True)  # as pipeline/plan.py builds it for --format html|markdown
    table = pa.table({"id": ["a", "b", "c", "d"], "source": ["A dog runs.", "Two girls.", LONG, "   "],
                      MARKED: [True, False, True, True]})
    translated = tr(tok(table))
    assert MARKED not in translated.column_names
    attention, hyps = translated.column(ATTENTION).to_pylist(), translated.column(HYP_IDS).to_pylist()
    pieces = tok(table).column(PIECES).to_pylist()
    assert attention[1] is None and attention[2] is None and attention[3] is None  # unmarked, split, empty
    assert len(attention[0]) == len(hyps[0][0]) * (len(pieces[0][0]) - 1)
    out = detok(translated)
    assert ATTENTION not in out.column_names
    align = out.column(ALIGN).to_pylist()
    assert align[1:] == [None, None, None]
    words = out.column("translation").to_pylist()[0].split()
    assert align[0] is None or (len(align[0]) == len(words) and all(0 <= a < 3 for a in align[0]))
    aligner, tr.aligner = tr.aligner, None  # an ensemble, CTranslate2: no attention, the same translations
    try:
        plain = tr(tok(table))
    finally:
        tr.aligner = aligner
    assert plain.column(ATTENTION).to_pylist() == [None] * 4
    assert plain.column(HYP_IDS).to_pylist() == translated.column(HYP_IDS).to_pylist()


def test_word_alignment_sums_the_attention_of_each_words_pieces(tiny_checkpoint):
    from model.formats import load_tokenizer
    from pipeline.stages.detokenize import word_alignment

    tokenizer = load_tokenizer(tiny_checkpoint, {})
    source, translation = "A dog runs quickly.", "Schnell rennt ein Hund."
    src = [len(p) for p in tokenizer.source_ids(source.split())]
    tgt = tokenizer.encode_target(translation.split())
    hyp = [t for w in tgt for t in w]
    want = [3, 2, 0, 1]
    rows = []
    for j, w in enumerate(tgt):
        for _ in w:  # each piece of target word j attends to the pieces of source word want[j]
            rows += [1.0 / src[want[j]] if k == want[j] else 0.0 for k, n in enumerate(src) for _ in range(n)]
    assert word_alignment(tokenizer, source, translation, hyp, rows) == want
    assert word_alignment(tokenizer, source, translation, hyp[:-1], rows) is None  # not the pieces written
    assert word_alignment(tokenizer, source + " x", translation, hyp, rows) is None  # not the source read
