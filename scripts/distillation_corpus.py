"""Training data for sequence-level knowledge distillation (Kim and Rush, 2016) that keeps the references:
every training source twice, once with its human reference and once with the teacher's translation.

    python scripts/distillation_corpus.py --references work/multi30k/train \\
        --translations work/multi30k/tuned-teacher/translations --output work/multi30k/tuned-corpus

--translations is the output of jobs/translate_corpus.py over the training set (rows whose status is
not `ok` are left out). The union is shuffled before it is cut into shards: the training job streams
shards in random order through a bounded shuffle buffer, so unshuffled halves would give epochs that
end on a run of one kind of target.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pipeline.io import read_table  # noqa: E402


def distillation_table(references: pa.Table, translations: pa.Table, seed: int) -> pa.Table:
    """(source, reference) rows: the references and the teacher's `ok` translations, shuffled together."""
    ok = translations.filter(pc.equal(translations["status"], "ok"))
    union = pa.concat_tables([
        pa.table({"source": references["source"], "reference": references["reference"]}),
        pa.table({"source": ok["source"], "reference": ok["translation"]}),
    ])
    return union.take(np.random.default_rng(seed).permutation(union.num_rows))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--references", required=True, help="training Parquet with source and reference columns")
    p.add_argument("--translations", required=True, help="the translation job's output over the same sources")
    p.add_argument("--output", required=True, help="local directory for the shards")
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    table = distillation_table(read_table(args.references, ["source", "reference"]),
                               read_table(args.translations, ["source", "translation", "status"]), args.seed)
    os.makedirs(args.output, exist_ok=True)
    for i, rows in enumerate(np.array_split(np.arange(table.num_rows), args.shards)):
        pq.write_table(table.take(rows), os.path.join(args.output, f"part-{i:05d}.parquet"))
    print(f"{table.num_rows:,} pairs in {args.shards} shards: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
