"""The JSON API's endpoints, one blueprint per concern: decisions, facts, operations, records (the decision log, the access review)."""
