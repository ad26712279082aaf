"""Sums a py-spy collapsed-stack profile (`py-spy record --format raw`) by function: where the samples went.

    python hack/profile_summary.py bench/profile/resync.txt [--top 25] [--match mtls_operator]

Prints, per function (`name (file:line)` as py-spy writes it), the share of samples in which it is on the stack
(inclusive) and at its top (self). --match keeps frames whose text contains the string (e.g. only our code).
"""

from __future__ import annotations

import argparse
import collections
import re
import sys

LINE_NUMBER = re.compile(r":\d+\)$")


def frame_name(frame: str) -> str:
    """`fn (path/file.py:123)` → `fn (path/file.py)`: one row per function, not per line."""
    return LINE_NUMBER.sub(")", frame.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="")
    args = parser.parse_args()
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    with open(args.profile) as lines:
        for line in lines:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            total += count
            frames = [frame_name(f) for f in stack.split(";")]
            for frame in set(frames):
                if args.match in frame:
                    inclusive[frame] += count
            if args.match in frames[-1]:
                own[frames[-1]] += count
    if not total:
        print("no samples", file=sys.stderr)
        return 1
    print(f"{total} samples")
    print("inclusive:")
    for frame, count in inclusive.most_common(args.top):
        print(f"  {100 * count / total:5.1f}%  {frame}")
    print("self:")
    for frame, count in own.most_common(args.top):
        print(f"  {100 * count / total:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
