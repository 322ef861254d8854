"""A bank simulator for Pilar's local stack and tests: NOT a bank, and no part of the platform.

It plays the external paying bank: it accepts signed payment batches over HTTP and reports
each instruction's result to the batch's callback URL, signed the same way, with configurable
latency, failures, duplicate and out-of-order callbacks, broken signatures and returns.
It deliberately shares no code with Pilar (a real bank would not).
"""
