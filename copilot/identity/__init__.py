"""Who is calling: web sessions and one-time login codes (users and scoping live in copilot.users)."""
