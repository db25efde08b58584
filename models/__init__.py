"""Storage and nothing else: tables, migrations, the database, the change log, history, fact reads and every
SQL statement, the fact cache and its watchers. It knows neither the policy nor HTTP."""
