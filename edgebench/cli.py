"""The edgebench command line: `python -m edgebench <command>` (or bin/edgebench). Each
command lives in edgebench/commands/<command>.py; a refusal prints one line, exit 2."""
from __future__ import annotations

import argparse
import errno
import shlex
import sys

from plumbing.errors import EdgebenchError

# A results folder that is full, read-only or not ours: the user's to fix, not a bug.
DISK_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Every command; with ``only``, just that command's options are built: some defaults
    import the report code (pandas, scipy), which `up`/`down`/`status` must not wait for
    (seconds on a host, minutes in the cgroup v2 guest of tests/platforms/guest.py)."""
    from edgebench.commands import COMMANDS
    parser = argparse.ArgumentParser(prog="edgebench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        p = sub.add_parser(module.NAME, help=module.HELP)
        if only is None or module.NAME == only:
            module.add_arguments(p)
        p.set_defaults(command_fn=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    from edgebench.commands import COMMANDS
    names = {m.NAME for m in COMMANDS}
    args = build_parser(argv[0] if argv and argv[0] in names else None).parse_args(argv)
    command = "edgebench " + " ".join(shlex.quote(a) for a in argv)
    try:
        return args.command_fn(args, command)
    except EdgebenchError as e:
        print(f"edgebench: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        if e.errno not in DISK_ERRORS:
            raise
        print(f"edgebench: cannot write {e.filename or 'the results'}: {e.strerror}: free space there "
              f"or pass a writable folder (--results DIR); what was written before is kept", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgebench: interrupted", file=sys.stderr)
        return 130
