"""The accounts every simulator keeps: one provider customer each, found by id or by API key."""

from __future__ import annotations

import secrets
import threading


class NotFound(KeyError):
    pass


class Conflict(ValueError):
    pass


class AccountBook:
    """`accounts` by id under `lock`; a key is compared with every account's in constant time."""

    lock: threading.RLock
    accounts: dict

    def account(self, account_id: str):
        try:
            return self.accounts[account_id]
        except KeyError:
            raise NotFound(f"no account {account_id}") from None

    def by_api_key(self, api_key: str):
        with self.lock:
            for account in self.accounts.values():
                if secrets.compare_digest(account.api_key.encode(), api_key.encode()):
                    return account
        return None

    def by_authorization(self, header: str):
        """The account whose key an `Authorization: Bearer <key>` header carries, or None."""
        scheme, _, key = header.partition(" ")
        return self.by_api_key(key.strip()) if scheme.lower() == "bearer" and key.strip() else None
