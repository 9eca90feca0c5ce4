"""``livedub-operator [kopf run options]``: kopf with the operator's handlers already loaded.

Equivalent to ``kopf run --module=livedub.operator.main [options]``; the image's entry point, so the
chart passes only what varies (namespaces, peering, liveness, verbosity).
"""

import sys

from kopf.cli import main as kopf_main

MODULE = "livedub.operator.main"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    kopf_main(["run", f"--module={MODULE}", *args], prog_name="livedub-operator")


if __name__ == "__main__":
    main()
