"""``python -m attnkit.bench <name> [options]``: run one benchmark (``--help`` for its options)."""

from __future__ import annotations

import sys

from attnkit.bench import available, run


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks:", ", ".join(available()) or "(none yet)")
        return 0
    return run(sys.argv[1], sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
