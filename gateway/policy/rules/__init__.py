"""One module a rule family; each rule has a stable id."""
