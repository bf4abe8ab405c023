"""Adoption analytics: the suggestion event log, metrics joined with CRM outcomes, talk-track ratings
(fed to retrieval ranking) and managers' annotations. See DESIGN §7."""
