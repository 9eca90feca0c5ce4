"""What the runtime promises the operator, in a package that carries no engine.

The operator scales pools from the runtime's ``/metrics`` and configures pods through the runtime's
environment. Both sides import these names from here, so a rename is one edit, and
``tests/unit/test_contract.py`` fails when the runtime stops exposing or reading one of them.
"""
