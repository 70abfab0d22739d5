"""Nodes before and after merging, and matches per rule, on real torchvision models.

    .venv/bin/python benchmarks/merge.py [--rules FILE ...] [--models resnet18,vgg16_bn,...]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,vgg16_bn,mobilenet_v2,densenet121")
    parser.add_argument("--rules", action="append", default=None)
    args = parser.parse_args()

    from hnn.ingest.pipeline import ingest
    from hnn.rules import combine, load_rule_sets

    rule_set = combine(load_rule_sets(args.rules))
    names = [rule.name for rule in rule_set.rules]
    print(f"{'model':<14} {'raw':>5} {'merged':>6} " + " ".join(f"{n:>15}" for n in names) + "  merge ms")
    for model in args.models.split(","):
        raw = ingest(f"torchvision.models:{model}")
        start = time.perf_counter()
        merged, counts = rule_set.apply(raw)
        elapsed = (time.perf_counter() - start) * 1000
        assert merged.total_flops == raw.total_flops and merged.total_params == raw.total_params
        print(f"{model:<14} {len(raw.nodes):>5} {len(merged.nodes):>6} "
              + " ".join(f"{counts[n]:>15}" for n in names) + f"  {elapsed:8.1f}")


if __name__ == "__main__":
    main()
