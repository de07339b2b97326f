"""What the tests and the benchmarks build on: builders of test data and the processes of a test stack.

It may import the apps; no product package imports it (paygate/tests/test_architecture.py holds that),
and neither `conftest.py` nor a test module is imported from anywhere: their fixtures come from here.
"""
