"""Names that cross the wire: mail headers, SES tags, SNS headers and the web app's paths.

Each is written by one part of mailer and read by another (or by a mail client, SES, SNS), so a
spelling that differs between the two breaks the pipeline quietly. They live here, once, at the
bottom of the layers: this module imports nothing.
"""

from __future__ import annotations

# -- mail headers ----------------------------------------------------------------------------------
DELIVERY_HEADER = "X-Mailer-Delivery"  # our ledger row id; SES events echo it back
PREVIEW_HEADER = "X-Mailer-Preview"  # marks an editors' preview
LIST_ID_HEADER = "List-Id"
FEEDBACK_ID_HEADER = "Feedback-ID"
LIST_UNSUBSCRIBE_HEADER = "List-Unsubscribe"
LIST_UNSUBSCRIBE_POST_HEADER = "List-Unsubscribe-Post"
# RFC 8058 one-click: the header's value, and the form field a mail client then POSTs.
ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"
ONE_CLICK = f"{ONE_CLICK_FIELD}={ONE_CLICK_VALUE}"

# -- SES message tags (EmailTags), echoed in every event ---------------------------------------------
CAMPAIGN_TAG = "campaign"
DELIVERY_TAG = "delivery"

# -- SNS -------------------------------------------------------------------------------------------
SNS_TYPE_HEADER = "x-amz-sns-message-type"

# -- the web app's paths ---------------------------------------------------------------------------
WEBHOOK_PATH = "/webhooks/ses"  # the SNS subscription's endpoint
SUBSCRIBE_PATH = "/subscribe"
CONFIRM_PATH = "/confirm"  # + /<token>: the link in the confirmation mail
# + /<token>: the link mailed to a reader's new address (a sign-up token never has a slash)
CONFIRM_ADDRESS_PATH = "/confirm/address"
HOLD_PATH = "/hold"  # + /<token>: "Hold the send" in the editors' preview mail
PREVIEW_PAGE_PATH = "/preview"  # + /<token>: the preview page (the issue, its planned send)
UNSUBSCRIBE_PATH = "/unsubscribe"  # + /<token>: the link in every issue and in List-Unsubscribe
MANAGE_PATH = "/manage"  # + /<token>: the reader's own page (the footer's "Manage" link)
CLICK_PATH = "/l"  # + /<issue>/<n>: a counted link (MAILER_CLICK_COUNTS), redirects to its URL

# -- SES's mailbox simulator (`mailer doctor --live`) ----------------------------------------------
SIMULATOR_DOMAIN = "simulator.amazonses.com"


def is_simulator(address: str | None) -> bool:
    """SES's mailbox simulator: its events are tests, never a reader's reputation."""
    return address is not None and address.strip().lower().endswith("@" + SIMULATOR_DOMAIN)
