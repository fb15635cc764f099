#!/usr/bin/env python3
"""Usage: check_http.py URL [--timeout SECONDS] [--warn-ms MS]

Exit 0 for a 2xx answer, 1 (warning) for a 2xx slower than --warn-ms, 2 for anything else
(non-2xx, timeout, refused). Prints the status line or the error.
"""
import argparse
import sys
import time
import urllib.error
import urllib.request

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("--timeout", type=float, default=2.0)
parser.add_argument("--warn-ms", type=float, default=None)
args = parser.parse_args()
started = time.monotonic()
try:
    with urllib.request.urlopen(args.url, timeout=args.timeout) as reply:
        elapsed_ms = (time.monotonic() - started) * 1000
        print(f"HTTP {reply.status} in {elapsed_ms:.0f} ms")
        if args.warn_ms is not None and elapsed_ms > args.warn_ms:
            sys.exit(1)
        sys.exit(0)
except urllib.error.HTTPError as error:
    print(f"HTTP {error.code}")
except (OSError, ValueError) as error:
    print(f"error: {error}")
sys.exit(2)
