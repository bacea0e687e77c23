"""What operators read: the figures `mailer stats` and the console show, as a read model.

The counters kept on write (``counters``: database triggers adjust them in the writing
transaction, ``mailer db recount`` rebuilds them), the figures read from them and the queries
the pages need, each module named for what it holds: ``delivery_figures`` (a campaign's sent,
delivered, bounced ... and their rates), ``subscriber_figures`` (counts, listings, growth),
``list_health`` (issue trends and the list's weeks), ``issue_report`` (one issue's
breakdowns), ``reader_records`` (search and one reader's whole record), ``send_figures`` (a
finished send's timeline and recipient domains, kept in tables of their own once counted),
``week_figures`` (the list week by week, the weeks that are over kept the same way),
``page_cache`` (the console's per-process cache of the breakdowns that are still counted).
They read the store's tables and never change a reader, a delivery or a campaign.
"""
