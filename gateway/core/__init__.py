"""Pure building blocks: addresses, replies, verdicts, ports. Standard library only."""
