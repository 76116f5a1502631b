"""The one intake: whatever adapter a message arrives by, it is gathered, decided, built and
committed here, and only then answered."""
