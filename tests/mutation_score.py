"""`make mutation`'s summary: what mutmut's run killed, of the mutants it made.

A mutant is killed when a test failed on it, or hung (timed out) on it: either way the
suite noticed the change. The score is killed over all mutants; the ones no test reached
count against it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(stats_path: str = "mutants/mutmut-cicd-stats.json") -> int:
    stats = json.loads(Path(stats_path).read_text())
    killed = stats["killed"] + stats["timeout"]
    total = stats["total"] - stats["skipped"]
    print(
        f"mutation score: {killed / total:.1%} ({killed} of {total} mutants killed, "
        f"{stats['timeout']} of them by a timeout; {stats['survived']} survived, "
        f"{stats['no_tests']} reached by no test)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
