"""Accounts: registration, JWT sessions, API keys and the one auth layer every route uses."""
