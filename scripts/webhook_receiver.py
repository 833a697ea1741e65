"""A webhook receiver for the demo.

  webhook_receiver.py serve PORT FILE   answer every POST with 204 and append
                                        one JSON line per request (webhook-id,
                                        webhook-timestamp, body) to FILE
  webhook_receiver.py show FILE         print one line per received alert
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver(BaseHTTPRequestHandler):
    out = None

    def do_POST(self):
        length = min(int(self.headers.get("content-length") or 0), 1 << 20)
        body = self.rfile.read(length)
        record = {
            "webhook_id": self.headers.get("webhook-id"),
            "webhook_timestamp": self.headers.get("webhook-timestamp"),
            "body": json.loads(body or b"null"),
        }
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def show(path):
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)
        d = r["body"]["data"]
        kind = r["body"]["type"]
        print(f"  {r['webhook_id']}  {kind:<26} {d['threshold_percent']:>3}%  spend {d['spend']} of {d['limit']} {d['currency']}")


if sys.argv[1] == "serve":
    Receiver.out = sys.argv[3]
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Receiver).serve_forever()
else:
    show(sys.argv[2])
