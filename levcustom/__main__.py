"""The ``levcustom`` console entry point.

A ``plan`` whose inputs have not changed since the last one is answered from the plan memo
(``levcustom.plan.memo``) before typer, rich and pydantic are imported; anything else runs the CLI.
"""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["plan"]:
        from levcustom.plan import memo

        memo.arm(argv)
        code = memo.replay()
        if code is not None:
            sys.exit(code)
    from levcustom.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
