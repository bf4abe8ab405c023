"""Module-level jobs a ``copilot worker`` runs by name: plain arguments, the worker's own services,
idempotent effects (see ``copilot.jobs.redis_queue``).

    services.jobs.submit(generate_suggestions, "c_a1", "2026-11-20")
"""

from __future__ import annotations

import logging

from copilot.jobs.redis_queue import worker_services

logger = logging.getLogger(__name__)


def generate_suggestions(customer_id: str, as_of: str | None = None) -> int:
    """Plan one customer's suggestions as its owner would see them and log the new ones as proposed
    (not shown: nobody has seen them yet), so that the digest and the rep's next request find them
    ready. Idempotent: a suggestion already logged (same customer, action type and evidence) is not
    logged again. Returns how many suggestions the plan has; 0 for a customer that no longer exists."""
    from copilot.suggestions import parse_as_of, suggester_for

    services = worker_services()
    snapshot = services.crm.get_customer(customer_id)
    if snapshot is None:  # deleted since the job was queued: nothing to do, and nothing to retry
        logger.info("suggestions job: customer %s not found", customer_id)
        return 0
    suggester = suggester_for(services)
    result = suggester.plan_for_owner(customer_id, parse_as_of(as_of))
    if snapshot.owner_user_id and result.suggestions:
        suggester.store.upsert(snapshot.owner_user_id, result.suggestions)
    logger.info("suggestions job: customer %s, %d suggestions", customer_id, len(result.suggestions))
    return len(result.suggestions)
