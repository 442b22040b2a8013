"""Web Push notifications to users with no live device (docs/push.md)."""
