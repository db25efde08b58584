"""The HTTP edge: the JSON API's declared endpoints, schemas, errors and their statuses, keys as Bearer, logs, metrics.

Each endpoint's body is one delegation to the core (`service/core/`).
"""
