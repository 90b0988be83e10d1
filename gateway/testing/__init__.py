"""Testing aids that ship with the SDK: provider wire formats, mocks, the fake provider."""
