"""Security tests of issue 18: each finding as a test that failed on the code it fixes."""
