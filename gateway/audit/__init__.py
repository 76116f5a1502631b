"""The auditors' side of the archive: its Merkle log kept and signed, and verified."""
