"""Standard Webhooks signatures (https://www.standardwebhooks.com/), made by the maintained
``standardwebhooks`` package, so that its verifier (and Zapier's, Make's and Relay.app's
generic webhook triggers, and any receiver following the spec) accepts them.

The signature is ``v1,`` and the base64 HMAC-SHA256, keyed with the secret after its
``whsec_`` prefix, of ``<webhook-id>.<webhook-timestamp>.<body>``. The timestamp is the
attempt's (receivers refuse one more than five minutes off their clock), the id the event's
(the same on every retry: receivers dedupe on it).
"""

from __future__ import annotations

import math
from datetime import datetime

__all__ = ["USER_AGENT", "signed_headers"]

USER_AGENT = "llm-gateway-webhooks/1"


def signed_headers(secret: str, *, event_id: str, body: str, at: datetime) -> dict[str, str]:
    """The headers of one delivery attempt of ``body`` (the exact text sent), made at ``at``."""
    from standardwebhooks import Webhook

    # The body is ASCII JSON, so its text and its bytes sign the same in every version.
    signature = Webhook(secret).sign(event_id, at, body)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(math.floor(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
