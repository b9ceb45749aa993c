"""Webhooks: a user's subscriptions to job events (subscriptions.py), the delivery rows written
with the change they report (events.py), and the deliverer that POSTs them, signed, with
retries (delivery.py, run by the scheduler process), only to addresses the policy allows
(addresses.py), over a connection pinned to the address checked (transport.py); old finished
deliveries are removed by cleanup.py."""
