"""One JSON line from a callgrind dump: instructions per request in all, and in each of
lms-proxy's ProxyHttp hooks (inclusive: what the hook and everything it calls cost).

usage: callgrind_summary.py VARIANT REQUESTS CALLGRIND_OUT
"""
import json
import re
import subprocess
import sys

HOOKS = ["request_filter", "upstream_peer", "upstream_request_filter", "upstream_response_filter", "logging"]


def main() -> None:
    variant, requests, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
        capture_output=True, text=True, check=True,
        # From a folder without the sources: inside the repository callgrind_annotate
        # resolves them and reports inclusive counts of inlined code differently.
        cwd="/",
    ).stdout
    total = 0
    hooks = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$", line)
        if not m:
            continue
        count, name = int(m.group(1).replace(",", "")), m.group(2)
        if "PROGRAM TOTALS" in name:
            total = count
        # The hook's own entry names the binary it was compiled into; the other entries
        # with its name are code inlined into it from other files.
        for hook in HOOKS:
            if f"ProxyHttp>::{hook}::{{{{closure}}}} [" in name:
                hooks[hook] = max(hooks.get(hook, 0), count)
    print(json.dumps({
        "bench": "instructions",
        "variant": variant,
        "requests": requests,
        "per_request": round(total / requests) if requests else None,
        "hooks": {h: round(c / requests) for h, c in hooks.items()} if requests else {},
    }))


if __name__ == "__main__":
    main()
