"""US federal tax-benefit components (issue 22), in Tax-Calculator's calcfunctions style.

``params`` loads the 2023-2026 current-law parameters copied from Tax-Calculator's
``policy_current_law.json``; ``components`` holds one small pure vectorised function per
component.  Filing status codes follow Tax-Calculator's ``MARS``: 1 single, 2 married
filing jointly, 3 married filing separately, 4 head of household.
"""
