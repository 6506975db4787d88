#!/usr/bin/env python3
"""Sends N identical POSTs on one keep-alive connection and reads every answer whole.

Used by benches/callgrind.sh. Usage: callgrind_client.py URL BODY_FILE N [END_MARKER]
Exits 1 when an answer is not 200 or (streams) lacks END_MARKER, or carries an error.
"""
import http.client
import sys
import urllib.parse

url, body_file, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
end = sys.argv[4].encode() if len(sys.argv) > 4 else None
body = open(body_file, "rb").read()
u = urllib.parse.urlsplit(url)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
for i in range(n):
    conn.request("POST", u.path, body, {"content-type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    bad = r.status != 200 or (end is not None and end not in data)
    bad = bad or data.startswith(b'{"error"') or b"event: error" in data
    if bad:
        sys.stderr.write(f"request {i}: {r.status} {data[:300]!r}\n")
        sys.exit(1)
conn.close()
