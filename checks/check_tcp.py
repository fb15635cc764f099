#!/usr/bin/env python3
"""Usage: check_tcp.py HOST:PORT [--timeout SECONDS]

Exit 0 when a TCP connection opens, 2 otherwise."""
import argparse
import socket
import sys

parser = argparse.ArgumentParser()
parser.add_argument("target")
parser.add_argument("--timeout", type=float, default=2.0)
args = parser.parse_args()
host, _, port = args.target.rpartition(":")
try:
    with socket.create_connection((host.strip("[]"), int(port)), timeout=args.timeout):
        print(f"connected to {args.target}")
        sys.exit(0)
except (OSError, ValueError) as error:
    print(f"cannot connect to {args.target}: {error}")
    sys.exit(2)
