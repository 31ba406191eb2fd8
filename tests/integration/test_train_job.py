"""prepare -> tokenizer -> Ray Train (2 CPU workers, DDP) -> checkpoints on S3 -> resume -> translate."""

import json

import pytest
import torch

from jobs.prepare_corpus import main as prepare
from jobs.train_model import main as train
from jobs.train_tokenizer import main as train_tokenizer
from model.decoding import DecodeConfig, translate_ids
from model.formats import load_checkpoint
from model.tokenizers import load_tokenizer_dir
from pipeline.io import read_table


def history(fs, uri):
    return [json.loads(line) for line in fs.cat_file(uri.removeprefix("s3://")).decode().splitlines()]


def test_prepare_tokenize_train_resume_translate(local_ray, s3_server, s3_bucket, sample_corpus, tmp_path, capsys):
    so = ["--storage-options", json.dumps(s3_server.storage_options)]
    table = read_table(sample_corpus)
    src, tgt = table.column("source").to_pylist(), table.column("reference").to_pylist()
    # bad pairs: empty, one side empty, far too long
    src += ["", "Only a source.", "", " ".join(["word"] * 300)]
    tgt += ["", "", "Nur ein Ziel.", "Kurz."]
    (tmp_path / "train.en").write_text("\n".join(src) + "\n")
    (tmp_path / "train.de").write_text("\n".join(tgt) + "\n")
    corpus, tok, out = f"{s3_bucket}/corpus", f"{s3_bucket}/tok", f"{s3_bucket}/model"
    assert prepare(["--source", str(tmp_path / "train.en"), "--target", str(tmp_path / "train.de"),
                    "--output", corpus, "--rows-per-shard", "100", *so]) == 0
    assert train_tokenizer(["--input", corpus, "--output", tok, "--vocab-size", "300", *so]) == 0

    common = ["--train", corpus, "--valid", corpus, "--valid-max-sentences", "16", "--tokenizer", tok,
              "--output", out, "--name", "tiny", "--layers", "1", "--d-model", "32", "--heads", "2",
              "--ff-dim", "64", "--dropout", "0", "--num-workers", "2", "--cpus-per-worker", "0.5",
              "--torch-threads", "1", "--data-cpus", "0.25", "--max-tokens", "400", "--max-len", "64",
              "--lr", "3e-3", "--warmup", "5", "--validate-every", "10", "--log-every", "5",
              "--keep-checkpoints", "3", "--average-last", "2", "--pool-rows", "64", "--read-rows", "32", *so]
    assert train([*common, "--max-steps", "20"]) == 0
    fs = s3_server.filesystem()
    log = history(fs, f"{out}/training_log.jsonl")
    assert [h["step"] for h in log] == [10, 20]
    assert log[1]["train_loss"] < log[0]["train_loss"]  # it learns
    assert log[-1]["epoch"] >= 1
    tokenizer = load_tokenizer_dir(tok, s3_server.storage_options)
    too_long = sum(max(len(a), len(b)) + 1 > 64 for a, b in zip(tokenizer.source.encode(src),
                                                              tokenizer.encode_target(tgt), strict=True) if a and b)
    assert too_long >= 1
    assert log[-1]["dropped"] == {"empty": 1, "one_side_empty": 2, "too_long": too_long}

    assert train([*common, "--max-steps", "30"]) == 2  # an existing run is not silently continued
    assert "--resume" in capsys.readouterr().err
    assert train([*common, "--max-steps", "30", "--resume"]) == 0
    log = history(fs, f"{out}/training_log.jsonl")
    assert [h["step"] for h in log] == [10, 20, 30]
    assert log[2]["target_tokens"] > log[1]["target_tokens"]

    opts = s3_server.storage_options
    for kind in ("best", "last", "average"):
        assert fs.exists(f"{out}/{kind}/config.json".removeprefix("s3://")), kind
    last = load_checkpoint(f"{out}/last", storage_options=opts)
    assert last.metadata["training"]["step"] == 30 and last.metadata["training"]["workers"] == 2
    assert load_checkpoint(f"{out}/average", storage_options=opts).metadata["averaged_steps"] == [20, 30]
    sentences = ["A dog runs on the beach.", "Two men are talking."]
    hyps, _ = translate_ids(last.model, last.tokenizer.encode_source(sentences), DecodeConfig(beam_size=3), 2000)
    text = last.tokenizer.decode_target([h[0].tokens for h in hyps])
    assert len(text) == 2 and all(isinstance(t, str) for t in text)
    assert all(h[0].tokens for h in hyps)

    # --init-model: a new run starts from those weights, in that architecture (--d-model 64 is overridden).
    # With lr 0 Adam moves nothing, so the new run's last/ must be the trained model exactly.
    flags = dict(zip(common[::2], common[1::2], strict=True))
    flags.update({"--output": f"{s3_bucket}/tuned", "--d-model": "64", "--lr": "0", "--num-workers": "1"})
    tuned_argv = [*[x for kv in flags.items() for x in kv], "--max-steps", "2", "--init-model", f"{out}/last"]
    assert train(tuned_argv) == 0
    tuned = load_checkpoint(f"{s3_bucket}/tuned/last", storage_options=opts)
    assert tuned.config["model"] == last.config["model"] and tuned.metadata["training"]["step"] == 2
    trained = last.model.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in tuned.model.state_dict().items())
    other_tok = f"{s3_bucket}/tok200"
    assert train_tokenizer(["--input", corpus, "--output", other_tok, "--vocab-size", "200", *so]) == 0
    flags.update({"--tokenizer": other_tok, "--output": f"{s3_bucket}/refused"})
    capsys.readouterr()
    assert train([*[x for kv in flags.items() for x in kv], "--init-model", f"{out}/last"]) == 2
    assert "another vocabulary" in capsys.readouterr().err


@pytest.mark.parametrize("arch", ["rnn"])
def test_recurrent_models_train_with_the_same_job(local_ray, sample_corpus, tmp_path, arch):
    tok = str(tmp_path / "tok")
    assert train_tokenizer(["--input", sample_corpus, "--output", tok, "--vocab-size", "200"]) == 0
    assert train(["--train", sample_corpus, "--tokenizer", tok, "--output", str(tmp_path / "m"), "--arch", arch,
                  "--cell", "gru", "--attention", "luong_general", "--input-feeding", "--layers", "1",
                  "--emb-dim", "16", "--hidden-dim", "32", "--scheduled-sampling", "linear", "--ss-c", "0.1",
                  "--max-steps", "6", "--validate-every", "3", "--max-tokens", "300", "--cpus-per-worker", "0.5",
                  "--data-cpus", "0.25", "--torch-threads", "1", "--warmup", "2"]) == 0
    ckpt = load_checkpoint(str(tmp_path / "m" / "last"))
    assert ckpt.config["arch"] == "rnn" and ckpt.config["model"]["attention"] == "luong_general"
    assert ckpt.config["model"]["input_feeding"] is True
    assert ckpt.metadata["train_config"]["sampling"]["scheduled_sampling"] == "linear"
    log = [json.loads(line) for line in (tmp_path / "m" / "training_log.jsonl").read_text().splitlines()]
    assert [round(r["teacher_forcing_rate"], 6) for r in log] == [0.7, 0.4]  # 1 - 0.1 * update


def test_storage_options_travel_to_the_workers_outside_ray_trains_run_state():
    """Ray Train keeps train_loop_config in its run state (RunSettings, every value str()-ed for the
    dashboard and exported state events): the credentials must not be in it (issue 31)."""
    import pickle

    from ray.train.v2._internal.state.schema import _to_json_serializable_value

    from jobs.train_model import TrainConfig
    from training.loop import loop_config, worker_cfg

    cfg = TrainConfig(train="t", tokenizer="tok", output="o",
                      storage_options={"key": "AKIAEXAMPLE", "secret": "s3cr3t-value"})
    store = {}

    def put(value):  # ray.put, without Ray: the value stays in the driver's object store
        store["ref"] = value
        return "ref"

    config = loop_config(cfg, "transformer", {"d_model": 8}, put)
    kept = json.dumps(_to_json_serializable_value(config)) + repr(config)
    assert "AKIAEXAMPLE" not in kept and "s3cr3t" not in kept
    assert b"AKIAEXAMPLE" not in pickle.dumps(config) and b"s3cr3t" not in pickle.dumps(config)
    assert worker_cfg(config, store.__getitem__) == cfg  # the worker gets them back
