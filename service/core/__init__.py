"""The core: decides and writes. The write path with its invariants, the authorizer, the policy keeper, the scenario runner, API keys.

It knows the policy (`policies`) and storage (`models`), and nothing of HTTP: no Flask, no SQL of its own.
"""
