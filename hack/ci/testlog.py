#!/usr/bin/env python3
"""testlog.py FILE — read `go test -json` on stdin, append the events to FILE
and print what plain `go test` prints (each package's ok/FAIL line, the whole
output of a failing or unfinished test, build errors), then the packages and
tests that took longest, so that a CI log shows where its minutes went.

`make test TEST_JSON=FILE` pipes through this (.ci/run sets it); the exit
status stays go test's (the Makefile sets pipefail).
"""
import json
import sys
from collections import OrderedDict

NOISE = ("=== RUN", "=== PAUSE", "=== CONT", "=== NAME")


def out(line):
    sys.stdout.write(line)
    sys.stdout.flush()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: go test -json ... | testlog.py FILE")
    buffers = OrderedDict()  # (package, test) -> output lines not yet judged
    packages = {}  # package -> (action, elapsed)
    tests = []  # (elapsed, package, test) of top-level tests that ended
    failed = []
    with open(sys.argv[1], "a", encoding="utf-8") as keep:
        for raw in sys.stdin:
            keep.write(raw)
            try:
                ev = json.loads(raw)
            except ValueError:
                out(raw)  # not an event: go itself printing (e.g. a vet error)
                continue
            action = ev.get("Action")
            pkg = ev.get("Package", ev.get("ImportPath", ""))
            test = ev.get("Test")
            if action == "build-output":
                out(ev.get("Output", ""))
            elif action == "output":
                line = ev.get("Output", "")
                if test is None:
                    # -json implies -v: its "PASS" of a package that passed
                    # is not what plain go test prints (its ok line is).
                    if not line.startswith(NOISE) and line != "PASS\n":
                        out(line)
                elif not line.startswith(NOISE):
                    buffers.setdefault((pkg, test), []).append(line)
            elif action in ("pass", "fail", "skip") and test is not None:
                lines = buffers.pop((pkg, test), [])
                if action == "fail":
                    failed.append(pkg + " " + test)
                    out("".join(lines))
                if "/" not in test and ev.get("Elapsed") is not None:
                    tests.append((ev["Elapsed"], pkg, test))
            elif action in ("pass", "fail", "skip") and pkg:
                packages[pkg] = (action, ev.get("Elapsed") or 0.0)
                if action == "fail":
                    # A timeout or a crash: print what the unfinished tests said.
                    for key in [k for k in buffers if k[0] == pkg]:
                        out("".join(buffers.pop(key)))
    if packages:
        ran = sorted(((e, p, a) for p, (a, e) in packages.items() if e > 0), reverse=True)
        out("\n== slowest packages (wall seconds; go test runs -p GOMAXPROCS of them at once)\n")
        for e, p, a in ran[:15]:
            out("%8.1f  %-4s %s\n" % (e, a, p))
        out("%8.1f  sum of %d packages\n" % (sum(e for e, _, _ in ran), len(ran)))
    if tests:
        out("\n== slowest tests (wall seconds)\n")
        for e, p, t in sorted(tests, reverse=True)[:20]:
            out("%8.1f  %s %s\n" % (e, p, t))
    if failed:
        out("\n== failed tests\n" + "".join("  " + f + "\n" for f in failed))


if __name__ == "__main__":
    main()
