"""CRM write-back: confirmed changes are audited and queued in one transaction, then delivered.

apply_change(...)      audit entry + outbox row in one transaction, then delivery (apply.py)
outbox.enqueue(...)    inside the caller's transaction; a key already queued is not queued again
outbox.deliver_pending(...)  after commit: exponential backoff with jitter, honours Retry-After,
                       permanent errors → failed with a Chinese message; rows survive restarts
commands.*             what `copilot outbox list|retry|cancel --json` prints
delivery.WritebackTicker.tick()  the background pass (API lifespan in embedded mode, `copilot worker`
                       in Redis mode): delivery, Chinese notifications of failures, CRM sync-back
sync.sync_outcomes(...)  stage moves and won/lost read back from the CRM into ``crm_outcomes``
"""
