"""Demo traffic: seeded demo users and accounts, and signed webhooks of every platform."""
