"""Input-contract validation speed: fastjsonschema against jsonschema on the same messages.

``python -m benchmarks.validators [--messages N]``: validates N copies of a realistic message (the
seed article's text as its body when the shared corpus is present) against
``schemas/article.schema.json`` with both libraries and prints messages/s. ParseArticle uses
fastjsonschema because of this measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import fastjsonschema
import jsonschema

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    args = parser.parse_args()
    schema = json.loads((ROOT / "schemas" / "article.schema.json").read_text("utf-8"))
    seed = (
        Path(os.environ.get("WIRESTREAM_CORPUS", ROOT.parent / "shared" / "corpus")) / "seed" / "kursk-deployment.txt"
    )
    body = seed.read_text("utf-8") if seed.exists() else "A short article body. " * 100
    messages = [
        {
            "url": f"https://x.example/{i}",
            "title": "A title",
            "body": body,
            "published_at": "2026-11-20T10:00:00Z",
            "source": "X",
            "authors": ["A. Writer"],
        }
        for i in range(args.messages)
    ]
    validators = {
        "jsonschema (Draft 2020-12)": jsonschema.validators.validator_for(schema)(schema).validate,
        "fastjsonschema": fastjsonschema.compile(schema),
    }
    for name, validate in validators.items():
        start = time.perf_counter()
        for message in messages:
            validate(message)
        rate = len(messages) / (time.perf_counter() - start)
        print(f"{name:28} {rate:12,.0f} messages/s")


if __name__ == "__main__":
    main()
