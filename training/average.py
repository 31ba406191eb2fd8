"""Checkpoint averaging: the mean of the last N checkpoints' weights (Vaswani et al. 2017 averaged
the last 5 or 20; fairseq's average_checkpoints.py). Usually worth a few tenths of BLEU for free."""

from __future__ import annotations

import torch

from model.formats import Checkpoint, load_checkpoint


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    if not states:
        raise ValueError("nothing to average")
    keys = states[0].keys()
    for s in states[1:]:
        if s.keys() != keys:
            raise ValueError("checkpoints to average have different parameters")
    return {k: torch.stack([s[k].float() for s in states]).mean(0) if states[0][k].is_floating_point()
            else states[-1][k] for k in keys}


def average_checkpoints(ray_checkpoints) -> Checkpoint:
    """Average Ray Train checkpoints (model directories); returns the averaged model and its tokenizer."""
    loaded = []
    for rc in ray_checkpoints:
        with rc.as_directory() as d:
            loaded.append(load_checkpoint(d))
    return average_loaded(loaded)


def average_loaded(loaded: list[Checkpoint]) -> Checkpoint:
    base = loaded[-1]
    base.model.load_state_dict(average_state_dicts([c.model.state_dict() for c in loaded]))
    return base


def main(argv: list[str] | None = None) -> int:
    """python -m training.average CKPT_DIR... --output DIR: average model directories at any URI
    (e.g. the Ray Train checkpoints of a run that was stopped before it wrote average/)."""
    import argparse

    from model.formats import save_checkpoint

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("checkpoints", nargs="+", help="model directories sharing one architecture and vocabulary")
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    loaded = [load_checkpoint(uri) for uri in args.checkpoints]
    base = average_loaded(loaded)
    metadata = {**base.metadata, "averaged_from": args.checkpoints,
                "averaged_steps": [c.metadata.get("training", {}).get("step") for c in loaded]}
    save_checkpoint(args.output, base.model, base.tokenizer, metadata=metadata)
    print(f"averaged {len(loaded)} checkpoints into {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
