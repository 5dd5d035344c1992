#!/usr/bin/env python3
"""Reads `go test -json` on stdin; prints package results, the output of
failed tests, and a closing 'tests: N passed, N failed, N skipped' line.
Exits 1 when anything failed."""
import json, sys

out, counts, failed_pkgs = {}, {"pass": 0, "fail": 0, "skip": 0}, []
for line in sys.stdin:
    try:
        ev = json.loads(line)
    except ValueError:
        print(line, end="")
        continue
    key = (ev.get("Package"), ev.get("Test"))
    act = ev.get("Action")
    if act == "output":
        out.setdefault(key, []).append(ev.get("Output", ""))
    elif act in counts and ev.get("Test"):
        counts[act] += 1
        if act == "fail":
            print("".join(out.get(key, [])), end="")
        elif act == "skip" and "/" not in ev["Test"]:
            msg = "".join(out.get(key, [])).strip().splitlines()
            print(f"SKIP {ev['Package']} {ev['Test']}: {msg[-1] if msg else ''}")
    elif act in ("pass", "fail") and not ev.get("Test"):
        print(f"{'ok  ' if act == 'pass' else 'FAIL'} {ev['Package']} {ev.get('Elapsed', 0):.1f}s")
        if act == "fail":
            failed_pkgs.append(ev["Package"])
            print("".join(out.get(key, [])), end="")
print(f"tests: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")
sys.exit(1 if counts["fail"] or failed_pkgs else 0)
