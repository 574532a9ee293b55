"""Estimate pi by sampling points in the unit square (standard library only)."""

import argparse
import json
import math
import os
import random


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args()
    if args.samples <= 0:
        parser.error("--samples must be positive")

    rng = random.Random(args.seed)
    inside = 0
    for _ in range(args.samples):
        x, y = rng.random(), rng.random()
        if x * x + y * y <= 1.0:
            inside += 1
    estimate = 4.0 * inside / args.samples
    # One standard error of the estimate: 4 * sqrt(p(1-p)/n).
    p = inside / args.samples
    stderr = 4.0 * math.sqrt(p * (1.0 - p) / args.samples)

    os.makedirs("out", exist_ok=True)
    with open("out/estimate.json", "w") as f:
        json.dump({"samples": args.samples, "seed": args.seed, "inside": inside,
                   "estimate": estimate, "stderr": stderr}, f, indent=2, sort_keys=True)
        f.write("\n")
    with open("out/metrics.json", "w") as f:
        json.dump({"estimate": estimate, "abs_error": abs(estimate - math.pi),
                   "stderr": stderr}, f, sort_keys=True)
        f.write("\n")
    print(f"pi ~ {estimate:.5f} +/- {stderr:.5f} from {args.samples} samples (seed {args.seed})")


if __name__ == "__main__":
    main()
