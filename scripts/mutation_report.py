"""Kill rate per module from mutmut's results (run after `mutmut run`, as `make mutation` does).

A mutant is detected when a test fails (killed) or the suite hangs (timeout); the rate is detected over all
mutants that some test executes. 'no tests' mutants (code no selected test reaches) and survivors are listed
per function, so the survivors can be judged: a real gap, or an equivalent mutant.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict


def main() -> int:
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], capture_output=True, text=True)
    rows = re.findall(r"^\s*(\S+?)__mutmut_\d+: (.+)$", out.stdout, re.MULTILINE)
    if not rows:
        print(out.stdout[-2000:] + out.stderr[-2000:])
        return 1
    per_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: dict[str, Counter[str]] = defaultdict(Counter)
    for name, status in rows:
        module = re.split(r"\.x_|\.xǁ", name)[0]
        per_module[module][status.strip()] += 1
        if status.strip() in ("survived", "no tests"):
            survivors[module][name.split(".")[-1].replace("xǁ", "").replace("ǁ", ".").removeprefix("x_")] += 1
    print("| module | mutants | killed | timeout | survived | no tests | not checked | kill rate |")
    print("|---|---|---|---|---|---|---|---|")
    for module, c in sorted(per_module.items()):
        detected = c["killed"] + c["timeout"]
        ran = detected + c["survived"]
        rate = f"{100 * detected / ran:.1f} %" if ran else "n/a"
        print(f"| {module} | {sum(c.values())} | {c['killed']} | {c['timeout']} | {c['survived']} | {c['no tests']} "
              f"| {c['not checked']} | {rate} |")  # fmt: skip
    print("\nSurvivors and untested mutants by function:")
    for module, c in sorted(survivors.items()):
        print(f"  {module}: " + ", ".join(f"{f} ({n})" for f, n in c.most_common()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
