"""Who is calling and what they may see: users and API tokens (users.py), scoping (access.py), server-side
web sessions (sessions.py) and one-time login codes (login_codes.py)."""
