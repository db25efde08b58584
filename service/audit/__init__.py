"""The auditor's pages (`/audit/`): read-only HTML in business words, behind an `audit` key, over the core."""
