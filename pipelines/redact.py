"""Secrets out of every message texfarm stores or prints: the userinfo of any URL
(http://user:password@host, a password that itself holds '@' included) and every query value
(signed-URL signatures, tokens in an endpoint's query string), which botocore's errors quote."""
from __future__ import annotations

import re

# A URL up to the first blank or quote; its userinfo runs to the LAST '@' before the path, so a
# password holding '@' goes whole.
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>[^\s\"'<>]+)")
_QUERY_VALUE = re.compile(r"(?P<key>[?&][^=&#\s]+=)[^&#\s]*")
# Signed-URL parameters outside a URL (a header dump, a boto message quoting only the query)
_QUERY_SECRETS = re.compile(r"(?P<key>(?:X-Amz-(?:Signature|Credential|Security-Token)|AWSAccessKeyId|Signature|"
                            r"x-amz-security-token)=)[^&\s\"']+", re.IGNORECASE)


def _url(match: re.Match) -> str:
    rest = match["rest"]
    authority_end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    authority, tail = rest[:authority_end], rest[authority_end:]
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return match["scheme"] + authority + _QUERY_VALUE.sub(r"\g<key>***", tail)


def redact(text: str) -> str:
    text = _URL.sub(_url, text)
    return _QUERY_SECRETS.sub(r"\g<key>***", text)
