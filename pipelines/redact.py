"""Secrets out of every message texfarm stores or prints: a password in an endpoint URL
(http://user:password@host) and signed-URL query parameters, which botocore's errors quote."""
from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")
_QUERY_SECRETS = re.compile(r"(?P<key>(?:X-Amz-(?:Signature|Credential|Security-Token)|AWSAccessKeyId|Signature|"
                            r"x-amz-security-token)=)[^&\s\"']+", re.IGNORECASE)


def redact(text: str) -> str:
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    return _QUERY_SECRETS.sub(r"\g<key>***", text)
