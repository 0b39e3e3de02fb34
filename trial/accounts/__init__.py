"""Signing in: passwords, two-factor, lockout, session limits, password reset."""
