"""Independent Standard Webhooks verifier for Herald's end-to-end tests.

Usage: verify_signatures.py DELIVERIES.json whsec_SECRET
Each item is {"headers": {...}, "body": "..."}; every one must verify with the
`standardwebhooks` reference library (PyPI). Prints the number verified; exits 1 on
the first failure.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook


def main() -> int:
    items = json.load(open(sys.argv[1]))
    hook = Webhook(sys.argv[2])
    for n, item in enumerate(items):
        try:
            hook.verify(item["body"], item["headers"])
        except Exception as err:  # noqa: BLE001 - report which delivery failed and why
            print(f"delivery {n} failed verification: {err!r}: {item['headers']}", file=sys.stderr)
            return 1
    print(len(items))
    return 0


if __name__ == "__main__":
    sys.exit(main())
