"""The one convention for user errors in every entry point: one line on stderr, exit status 2, no traceback."""
from __future__ import annotations

import sys

from htmc.synthesis.abc_tool import AbcError, AbcNotFoundError

# Failures that are the user's input or environment (bad names and values, missing files, no ABC).
USER_ERRORS = (ValueError, KeyError, FileNotFoundError, AbcNotFoundError, AbcError)


def user_error(e: BaseException) -> int:
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)  # KeyError would quote the message
    msg = " ".join(part.strip() for part in str(msg).splitlines() if part.strip())  # one line (YAML, ABC output)
    print(f"htmc: error: {msg}", file=sys.stderr)
    return 2
