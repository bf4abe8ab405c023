"""Chat channels (WeCom, DingTalk, web): adapters that verify, decrypt, parse and send.

`crypto` holds the platforms' shared callback crypto; it has no I/O and no settings.
"""
