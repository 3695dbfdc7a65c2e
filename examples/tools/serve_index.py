#!/usr/bin/env python3
"""Serve a package index directory on loopback and log every request.

  serve_index.py DIR [--port-file F] [--log F] [--agents F] [--delay-ms N] [--cache-headers]

Binds 127.0.0.1 on a free port, writes the port to --port-file once it
listens, appends "METHOD PATH" lines to --log and each request's User-Agent
header to --agents. --delay-ms slows every
response (a slow mirror). --cache-headers sends the Cache-Control headers PyPI
sends (files: immutable; index pages: 10 minutes), without which pip's HTTP
cache keeps nothing. Stops on SIGTERM or SIGINT.
"""
import argparse
import functools
import http.server
import os
import signal
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--agents")
    ap.add_argument("--delay-ms", type=int, default=0)
    ap.add_argument("--cache-headers", action="store_true")
    args = ap.parse_args()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, fmt, *a):
            pass

        def send_head(self):
            if args.log:
                with open(args.log, "a") as f:
                    f.write("%s %s\n" % (self.command, self.path))
            if args.agents:
                with open(args.agents, "a") as f:
                    f.write("%s\n" % self.headers.get("User-Agent", ""))
            if args.delay_ms:
                time.sleep(args.delay_ms / 1000.0)
            return super().send_head()

        def end_headers(self):
            if args.cache_headers:
                if self.path.startswith("/files/"):
                    self.send_header("Cache-Control", "max-age=365000000, immutable, public")
                else:
                    self.send_header("Cache-Control", "max-age=600, public")
            super().end_headers()

    handler = functools.partial(Handler, directory=args.dir)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(server.server_address[1]))
        os.rename(tmp, args.port_file)
    else:
        print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
