"""Notifications about chosen events (REGISTER by default): a signed webhook and/or an e-mail,
each event delivered once per target across restarts, from polled or pushed events."""
