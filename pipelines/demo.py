"""Build the demo input of ``make run``: the seed article (when the corpus has it) plus repo articles.

``python -m pipelines.demo OUT.jsonl`` writes one record per line. The corpus location is the
``WIRESTREAM_CORPUS`` setting (default ``../shared/corpus`` beside the project root).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO_ARTICLES = PROJECT_ROOT / "demo" / "articles.jsonl"
SEED_URL = "https://www.wirestream.example/world/2026/kursk-deployment"


def corpus_dir(environ: os._Environ[str] | dict[str, str] = os.environ) -> Path:
    """Where the shared corpus of real articles lives."""
    return Path(environ.get("WIRESTREAM_CORPUS", PROJECT_ROOT.parent / "shared" / "corpus"))


def seed_message(corpus: Path) -> dict[str, str] | None:
    """The seed article as an input message, or None when the corpus does not have it."""
    path = corpus / "seed" / "kursk-deployment.txt"
    if not path.exists():
        return None
    return {
        "id": "seed-kursk-deployment",
        "url": SEED_URL,
        "title": "US concerned by North Korean troop deployment to Kursk",
        "source": "seed",
        "body": path.read_text("utf-8"),
    }


def build(out: Path, corpus: Path) -> int:
    """Write the demo input; the number of records written."""
    lines = []
    seed = seed_message(corpus)
    if seed is None:
        print(f"note: no seed article under {corpus}/seed; the demo uses the repo's articles only", file=sys.stderr)
    else:
        lines.append(json.dumps(seed, ensure_ascii=False).encode("utf-8"))
    lines.extend(line for line in DEMO_ARTICLES.read_bytes().splitlines() if line.strip())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"\n".join(lines) + b"\n")
    return len(lines)


if __name__ == "__main__":
    count = build(Path(sys.argv[1]), corpus_dir())
    print(f"demo input: {count} records in {sys.argv[1]}")
