"""Gather a finished ``python -m frbook train`` run into one result file for the book.

    python scripts/collect_run.py RUN_DIR book/results/NAME/LABEL.json

The file holds the run's summary (final metrics, best checkpoint, provenance of the training
command), its resolved config and every evaluation it logged, so a chapter can show the result
without the run folder (checkpoints stay out of the repository).
"""
import json
import sys
from pathlib import Path

import yaml


def collect(run: Path, out: Path) -> None:
    summary = json.loads((run / "summary.json").read_text())
    config = yaml.safe_load((run / "config.yaml").read_text())
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    # Evaluation records are the logged lines holding a metric of an evaluation target ("lfw/...").
    evaluations = [line for line in lines if any("/" in key for key in line)]
    record = {"loss": config["loss"]["name"], "config": config, "summary": summary,
              "evaluations": evaluations, "provenance": summary["provenance"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    collect(Path(sys.argv[1]), Path(sys.argv[2]))
