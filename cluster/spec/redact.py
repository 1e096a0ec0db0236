"""Secrets out of anything logged: values under secret-looking keys, and passwords inside URIs."""
from __future__ import annotations

import re

SECRET_RE = re.compile(r"(secret|password|passwd|token|credential|access_key|private_key|api_key)", re.I)


def redact(obj):
    """A copy with values under secret-looking keys replaced, and credentials stripped from URIs."""
    if isinstance(obj, dict):
        return {k: ("***" if isinstance(k, str) and SECRET_RE.search(k) else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return redact_uri(obj)
    return obj


def redact_uri(text: str) -> str:
    """postgresql://user:pw@host/db -> postgresql://user:***@host/db (any scheme with a password)."""
    return re.sub(r"(?P<pre>[A-Za-z][A-Za-z0-9+.-]*://[^/:@\s]*):[^@/\s]*@", r"\g<pre>:***@", text)
